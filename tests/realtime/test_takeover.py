"""Watchers across worker processes: SIGKILL of the owner and its accounts are watched again
by another within 30 s, with no APPEND made meanwhile missed; SIGTERM hands them over at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from core.models import AccountStatus, Plan
from core.runtime import Runtime
from core.settings import Settings
from tests.realtime.helpers import (
    SYNC_COMPLETED,
    completed,
    idle_env,
    start_worker,
    wait_started,
    wait_status,
    wait_watched,
    watched_by,
)
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.websocket import subscribe, websocket
from tests.sync.test_crash_safety import wait_until
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]
ACCOUNTS = 3
LEASE_SECONDS = 6  # idle_env's: a SIGKILLed worker's accounts are free after this


async def test_sigkill_and_sigterm_hand_the_watchers_over(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(plan=Plan.ENTERPRISE)  # several accounts
    client = gql.as_user(owner.token)
    env = idle_env(make_settings())
    async with AsyncExitStack() as stack:
        boxes = [
            await stack.enter_async_context(private_mailbox("dovecot", dovecot, tmp_path))
            for _ in range(ACCOUNTS)
        ]
        ids = [await connect_and_start(client, box, labels=["INBOX"]) for box in boxes]
        first = start_worker(env, tmp_path, "first")
        second = third = None
        try:
            holders = {await wait_watched(runtime, a, log=first) for a in ids}
            assert len(holders) == 1  # the first worker has them all
            for account_id in ids:
                await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=first)
            second = start_worker(env, tmp_path, "second")
            await wait_started(second)  # and finds nothing free
            assert {await watched_by(runtime, a) for a in ids} == holders

            ws = await stack.enter_async_context(websocket(running_app, http))
            await subscribe(ws, runtime, owner, "live", SYNC_COMPLETED)

            killed_at = time.monotonic()
            first.kill()
            for number, box in enumerate(boxes):  # nobody watches: these must not be lost
                await box.admin.append("INBOX", make_message(f"while orphaned {number}"))

            async def all_taken_over() -> bool:
                now = {await watched_by(runtime, a) for a in ids}
                return None not in now and not (now & holders)

            await wait_until("the takeover", all_taken_over, within=30, log=second)
            takeover = time.monotonic() - killed_at
            assert takeover < 30
            arrived: dict[str, int] = {}
            deadline = time.monotonic() + 15
            while len(arrived) < ACCOUNTS and time.monotonic() < deadline:
                event = completed(await ws.receive_json(timeout=deadline - time.monotonic()))
                if event["newMessages"]:
                    account = event["account"]["id"]
                    arrived[account] = arrived.get(account, 0) + event["newMessages"]
            assert arrived == {str(a): 1 for a in ids}, second.tail()

            # SIGTERM: the leases are released at once, the third worker takes them within
            # its next tick (not after a lease runs out).
            third = start_worker(env, tmp_path, "third")
            await wait_started(third)
            holders = {await watched_by(runtime, a) for a in ids}
            stopped_at = time.monotonic()
            await asyncio.to_thread(second.stop)
            await wait_until("the handover", all_taken_over, within=LEASE_SECONDS, log=third)
            handover = time.monotonic() - stopped_at
            assert handover < LEASE_SECONDS
            print(
                f"takeover after SIGKILL {takeover:.1f} s, handover after SIGTERM {handover:.1f} s"
            )
        finally:
            for process in (first, second, third):
                if process is not None:
                    await asyncio.to_thread(process.stop)
