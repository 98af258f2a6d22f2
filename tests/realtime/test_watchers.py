"""A watcher's life: pause, resume and remove take effect within a second; a dropped
connection comes back and misses nothing; a refused login stops it as AUTH_FAILED; a
server without IDLE is polled. Real `mailsync worker` processes against Dovecot."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import update

from core.accounts import credentials
from core.db import session_scope
from core.jobs import sync_job_id
from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from core.settings import Settings
from tests.realtime.helpers import (
    SYNC_COMPLETED,
    DroppingProxy,
    idle_env,
    lease,
    start_worker,
    wait_status,
    wait_watched,
    watched_by,
)
from tests.realtime.test_idle_push import next_completed, realtime_mode
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import Quirks, QuirksProxy
from tests.support.mailservers import ImapServer
from tests.support.sync import Mailbox, connect_and_start, private_mailbox, seen_through
from tests.support.websocket import subscribe, websocket
from tests.sync.test_crash_safety import WorkerProcess, wait_until
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]
WITHIN_A_SECOND = 1.5  # one supervisor tick (1 s) and the query
PAUSE = "mutation($id: ID!) { pauseSync(accountId: $id) { userErrors { code } } }"
RESUME = "mutation($id: ID!) { resumeSync(accountId: $id) { userErrors { code } } }"
REMOVE = "mutation($id: ID!) { removeMailAccount(accountId: $id) { userErrors { code } } }"


@asynccontextmanager
async def running_worker(settings: Settings, tmp: Path) -> AsyncIterator[WorkerProcess]:
    process = start_worker(idle_env(settings), tmp)
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)


async def ok(client: GraphQLClient, mutation: str, account_id: object) -> None:
    data = await client.execute(mutation, {"id": str(account_id)})
    [payload] = data.values()
    assert payload["userErrors"] == [], data


async def within(what: str, seconds: float, check: Callable[[], Awaitable[bool]]) -> float:
    started = time.monotonic()
    await wait_until(what, check, within=seconds)
    return time.monotonic() - started


async def only_the_watcher_connected(
    runtime: Runtime, proxy: DroppingProxy, account_id: uuid.UUID, process: WorkerProcess
) -> None:
    """Wait until no sync run is queued, running or connected (a cut then hits the watcher
    alone), and still so a second later: runs come in pairs (one asked for during another)."""
    job = sync_job_id(account_id)

    async def quiet_once() -> bool:
        queued = await runtime.redis.exists(f"arq:job:{job}", f"arq:in-progress:{job}")
        return proxy.live == 1 and not queued

    async def quiet() -> bool:
        if not await quiet_once():
            return False
        await asyncio.sleep(1.0)
        return await quiet_once()

    await wait_until("the sync runs to end", quiet, within=20, log=process)


async def test_pause_resume_and_remove_stop_and_start_the_watcher(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        DroppingProxy(direct.server.host, direct.server.port) as proxy,
    ):
        box = seen_through(direct, proxy)
        account_id = await connect_and_start(client, box, labels=["INBOX"])
        async with running_worker(make_settings(), tmp_path) as process:
            await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=process)
            await wait_watched(runtime, account_id, log=process)
            assert proxy.live == 1  # the watcher's connection alone

            await ok(client, PAUSE, account_id)

            async def closed() -> bool:
                return proxy.live == 0 and await watched_by(runtime, account_id) is None

            await within("the watcher to stop after pauseSync", WITHIN_A_SECOND, closed)
            assert await realtime_mode(client, account_id) == "POLLING"

            await ok(client, RESUME, account_id)
            await wait_watched(runtime, account_id, within=10, log=process)
            assert await realtime_mode(client, account_id) == "IDLE"

            await ok(client, REMOVE, account_id)

            async def gone() -> bool:
                return proxy.live == 0 and await lease(runtime, account_id) is None

            await within("the watcher to stop after removeMailAccount", WITHIN_A_SECOND, gone)


async def test_a_dropped_connection_comes_back_and_misses_nothing(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        DroppingProxy(direct.server.host, direct.server.port) as proxy,
    ):
        box = seen_through(direct, proxy)
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with running_worker(make_settings(), tmp_path) as process:
            await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=process)
            await wait_watched(runtime, account_id, log=process)

            await only_the_watcher_connected(runtime, proxy, account_id, process)
            accepted = proxy.accepted
            async with websocket(running_app, http) as ws:
                await subscribe(ws, runtime, owner, "live", SYNC_COMPLETED, {"id": str(account_id)})
                assert proxy.drop_all() >= 1  # the watcher (and a sync run, if one is on)
                # Arrives while the watcher is disconnected: the reconnect must catch it.
                await direct.admin.append("INBOX", make_message("during the outage"))
                event = await next_completed(ws, "newMessages", 10)
                assert event["newMessages"] == 1
            await wait_watched(runtime, account_id, log=process)
            assert proxy.accepted > accepted  # it reconnected


async def test_a_refused_login_stops_the_watcher_as_auth_failed(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        DroppingProxy(direct.server.host, direct.server.port) as proxy,
    ):
        box = seen_through(direct, proxy)
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with running_worker(make_settings(), tmp_path) as process:
            await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=process)
            await wait_watched(runtime, account_id, log=process)
            await only_the_watcher_connected(runtime, proxy, account_id, process)
            async with session_scope(runtime.session_factory) as session:
                await session.execute(
                    update(MailAccount)
                    .where(MailAccount.id == account_id)
                    .values(
                        imap_password_encrypted=credentials.seal(
                            runtime.key_ring, account_id, credentials.IMAP, "changed-on-the-server"
                        )
                    )
                )
            proxy.drop_all()  # the watcher logs in again, with the stored (now wrong) password
            await wait_status(runtime, account_id, AccountStatus.AUTH_FAILED, log=process)

            async def released() -> bool:
                row = await lease(runtime, account_id)
                return row is not None and row.worker_id is None

            await within("the lease to be released", WITHIN_A_SECOND, released)
            assert "IDLE login refused" in process.tail(), process.tail()
            accepted = proxy.accepted
            await asyncio.sleep(2.5)
            assert proxy.accepted == accepted, "the watcher kept trying a refused login"


async def test_a_server_without_idle_is_polled(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        QuirksProxy(direct.server.host, direct.server.port, Quirks(hide=("IDLE",))) as quirks,
    ):
        box: Mailbox = seen_through(direct, quirks)
        account_id = await connect_and_start(client, box, labels=["INBOX"])
        async with running_worker(make_settings(), tmp_path) as process:
            await wait_status(runtime, account_id, AccountStatus.ACTIVE, log=process)

            async def known_without_idle() -> bool:
                row = await lease(runtime, account_id)
                return row is not None and row.idle is False

            await wait_until("the lease to say no IDLE", known_without_idle, within=15, log=process)
            row = await lease(runtime, account_id)
            assert row is not None and row.worker_id is None and row.established_at is None
            assert await realtime_mode(client, account_id) == "POLLING"
            assert "IDLE" not in quirks.names()
            await asyncio.sleep(2)  # and it is not claimed again for nothing
            row = await lease(runtime, account_id)
            assert row is not None and row.worker_id is None
