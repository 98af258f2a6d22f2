"""New mail, expunges and flag changes reach a subscriber through IMAP IDLE, without syncNow
and long before the polling interval (ten minutes here), from a real `mailsync worker`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from httpx_ws import AsyncWebSocketSession

from core.models import AccountStatus
from core.runtime import Runtime
from core.settings import Settings
from tests.realtime.helpers import (
    SYNC_COMPLETED,
    completed,
    idle_env,
    start_worker,
    wait_status,
    wait_watched,
)
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.websocket import subscribe, websocket
from tests.sync.test_sync_engine import make_message

REALTIME = "query { me { mailAccounts { id realtime } } }"
NewUser = Callable[..., Awaitable[TestUser]]
PUSH_WITHIN = 5.0  # seconds; the polling interval is 600


async def realtime_mode(client: GraphQLClient, account_id: object) -> str:
    data = await client.execute(REALTIME)
    [mode] = [a["realtime"] for a in data["me"]["mailAccounts"] if a["id"] == str(account_id)]
    return str(mode)


async def next_completed(ws: AsyncWebSocketSession, want: str, within: float) -> dict[str, int]:
    """The next syncCompleted with a non-zero ``want`` count (runs with nothing new, such as
    the one a flag write-back causes, are skipped)."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no syncCompleted with {want} within {within} s"
        try:
            event = completed(await ws.receive_json(timeout=left))
        except TimeoutError:
            raise AssertionError(f"no syncCompleted with {want} within {within} s") from None
        if event[want]:
            return event


async def test_append_expunge_and_flags_arrive_through_idle(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(company="Live Co")
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append("INBOX", make_message("before"))
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        process = start_worker(idle_env(make_settings()), tmp_path)
        try:
            await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=process)
            await wait_watched(runtime, account_id, log=process)
            assert await realtime_mode(gql.as_user(owner.token), account_id) == "IDLE"
            async with websocket(running_app, http) as ws:
                await subscribe(ws, runtime, owner, "live", SYNC_COMPLETED, {"id": str(account_id)})

                started = time.monotonic()
                await box.admin.append("INBOX", make_message("pushed"))
                event = await next_completed(ws, "newMessages", PUSH_WITHIN)
                latency = time.monotonic() - started
                assert event["newMessages"] == 1
                assert latency < PUSH_WITHIN

                [first, _] = await box.admin.uids("INBOX")
                await box.admin.store("INBOX", first, "+FLAGS", "\\Flagged")
                assert (await next_completed(ws, "updatedMessages", PUSH_WITHIN))[
                    "updatedMessages"
                ] == 1

                await box.admin.expunge("INBOX", first)
                assert (await next_completed(ws, "removedMessages", PUSH_WITHIN))[
                    "removedMessages"
                ] == 1
        finally:
            await asyncio.to_thread(process.stop)
    assert process.process.returncode is not None
