"""The worker around the engine: arq jobs, events, the scheduler, authentication failures."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from core.accounts import credentials
from core.db import session_scope
from core.jobs import sync_job_id
from core.models import AccountStatus, MailAccount, Message
from core.runtime import Runtime
from core.settings import Settings
from core.sync import repository
from core.sync.run import AUTH_FAILED_MESSAGE, AccountSyncRun
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import QuirksProxy
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    EVERY_RUN,
    burst_worker,
    connect_and_start,
    private_mailbox,
    seen_through,
    sync_once,
)
from tests.support.websocket import receives_nothing, subscribe, websocket
from tests.sync.test_sync_engine import make_message
from workers.arq_worker import QuietIdleCrons, quiet_idle_crons
from workers.sync_job import schedule_due_syncs

NewUser = Callable[..., Awaitable[TestUser]]

SYNC_COMPLETED = """
subscription($id: ID) {
  syncCompleted(accountId: $id) {
    account { id status } initial newMessages updatedMessages removedMessages
  }
}"""
STATUS_CHANGED = "subscription { accountStatusChanged { id status lastError } }"


async def test_start_sync_queues_a_job_and_the_owner_hears_it_complete(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(company="Owner Co")
    stranger = await new_user(company="Stranger Co")
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message(f"m{i}"), now) for i in range(3)])
        async with (
            websocket(running_app, http) as owner_ws,
            websocket(running_app, http) as other_ws,
        ):
            await subscribe(owner_ws, runtime, owner, "done", SYNC_COMPLETED)
            await subscribe(other_ws, runtime, stranger, "done", SYNC_COMPLETED)
            account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
            assert await runtime.redis.exists(f"arq:job:{sync_job_id(account_id)}")

            await burst_worker(make_settings())

            event = await owner_ws.receive_json(timeout=10)
            assert event["type"] == "next"
            completed = event["payload"]["data"]["syncCompleted"]
            assert completed == {
                "account": {"id": str(account_id), "status": "ACTIVE"},
                "initial": True,
                "newMessages": 3,
                "updatedMessages": 0,
                "removedMessages": 0,
            }
            await receives_nothing(other_ws, seconds=1.0)
    async with runtime.session_factory() as session:
        stored = list(await session.scalars(select(Message.subject).order_by(Message.subject)))
    assert stored == ["m0", "m1", "m2"]


async def test_wrong_stored_password_is_auth_failed_and_not_retried(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(MailAccount)
                .where(MailAccount.id == account_id)
                .values(
                    imap_password_encrypted=credentials.seal(
                        runtime.key_ring, account_id, credentials.IMAP, "the-password-was-changed"
                    )
                )
            )
        async with websocket(running_app, http) as ws:
            await subscribe(ws, runtime, owner, "status", STATUS_CHANGED)
            assert await AccountSyncRun(runtime, account_id, EVERY_RUN).run() is None
            event = await ws.receive_json(timeout=10)  # startSync made it SYNCING already
        changed = event["payload"]["data"]["accountStatusChanged"]
        assert changed == {
            "id": str(account_id),
            "status": "AUTH_FAILED",
            "lastError": AUTH_FAILED_MESSAGE,
        }

        logins_before = dovecot.log_tail(10_000).count(box.username)
        assert await AccountSyncRun(runtime, account_id, EVERY_RUN).run() is None
        async with runtime.session_factory() as session:
            account = await session.get(MailAccount, account_id)
        assert account is not None and account.status is AccountStatus.AUTH_FAILED
        assert account_id not in await _due(runtime)  # the scheduler leaves it alone
        assert dovecot.log_tail(10_000).count(box.username) == logins_before  # no new login

        reconnected = await gql.as_user(owner.token).execute(
            """mutation($input: ReconnectMailAccountInput!) {
                 reconnectMailAccount(input: $input) { account { status } userErrors { code } }
               }""",
            {"input": {"accountId": str(account_id), "imapPassword": box.password}},
        )
        assert reconnected["reconnectMailAccount"] == {
            "account": {"status": "ACTIVE"},
            "userErrors": [],
        }
        result = await sync_once(runtime, account_id)
        assert result.initial is True


async def _due(runtime: Runtime) -> list[uuid.UUID]:
    async with runtime.session_factory() as session:
        return await repository.due_account_ids(session, datetime.now(UTC), 100)


async def test_scheduler_requeues_due_accounts_after_redis_is_flushed(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        await sync_once(runtime, account_id)
        job_key = f"arq:job:{sync_job_id(account_id)}"
        async with session_scope(runtime.session_factory) as session:  # the interval has passed
            await session.execute(
                update(MailAccount)
                .where(MailAccount.id == account_id)
                .values(next_sync_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        await runtime.redis.flushdb()  # Redis forgot every queued job
        assert not await runtime.redis.exists(job_key)

        queued = await schedule_due_syncs({"runtime": runtime})
        assert queued == 1
        assert await runtime.redis.exists(job_key)
        assert await schedule_due_syncs({"runtime": runtime}) == 0  # the job id deduplicates


SYNC_PROGRESS = """
subscription($id: ID) {
  syncProgress(accountId: $id) { account { id } folder fetched total }
}"""


async def test_progress_is_pushed_per_chunk_to_the_owner(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message(f"p{i}"), now) for i in range(150)])
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with websocket(running_app, http) as ws:
            await subscribe(ws, runtime, owner, "progress", SYNC_PROGRESS, {"id": str(account_id)})
            await sync_once(runtime, account_id)
            events = [await ws.receive_json(timeout=10) for _ in range(2)]
    progress = [e["payload"]["data"]["syncProgress"] for e in events]
    # The first chunk is one inbox page (50), the next a whole chunk (100).
    assert progress == [
        {"account": {"id": str(account_id)}, "folder": "INBOX", "fetched": 50, "total": 150},
        {"account": {"id": str(account_id)}, "folder": "INBOX", "fetched": 150, "total": 150},
    ]


def _arq_job_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """arq's start ("→") and finish ("←") lines of cron jobs: the scheduler's, and any other
    cron whose minute came round during the test (the sends' requeue at second 30)."""
    return [
        r
        for r in records
        if r.name == "arq.worker" and any(f"{arrow} cron:" in r.getMessage() for arrow in "→←")
    ]


async def test_idle_crons_log_nothing_and_the_filter_knows_arqs_lines(
    runtime: Runtime, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """A burst worker runs the scheduler cron once at start, with nothing due: arq's start and
    finish lines for it are there without QuietIdleCrons (so the filter matches arq's real
    format, not a guess) and gone with it, while arq's other lines stay."""
    caplog.set_level(logging.INFO, logger="arq.worker")
    await burst_worker(make_settings())
    cron_lines = _arq_job_lines(caplog.records)
    assert len(cron_lines) >= 2, [r.getMessage() for r in caplog.records]
    quiet = QuietIdleCrons()
    assert [r.getMessage() for r in cron_lines if quiet.filter(r)] == []
    other_lines = [r for r in caplog.records if r.name == "arq.worker" and r not in cron_lines]
    assert other_lines and all(quiet.filter(r) for r in other_lines)

    caplog.clear()
    quiet_idle_crons()
    try:
        await burst_worker(make_settings())
    finally:
        arq_log = logging.getLogger("arq.worker")
        for installed in [f for f in arq_log.filters if isinstance(f, QuietIdleCrons)]:
            arq_log.removeFilter(installed)
    assert _arq_job_lines(caplog.records) == []
    assert any(r.name == "arq.worker" for r in caplog.records)  # the worker did log its start


SYNC_NOW = """
mutation($id: ID!) { syncNow(accountId: $id) { account { id } userErrors { code } } }
"""


async def test_sync_now_during_a_running_sync_gets_a_run_after_it(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """The job id de-duplicates a syncNow that arrives while its run is under way: that
    request must not be lost (nor wait a whole interval)."""
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        QuirksProxy(box.server.host, box.server.port) as proxy,
    ):
        account_id = await connect_and_start(client, seen_through(box, proxy), labels=["INBOX"])
        await sync_once(runtime, account_id)  # synced: the next run is an interval away
        mark = len(proxy.commands)

        held = proxy.hold("LIST")  # the run stops once logged in, until released
        assert (await client.execute(SYNC_NOW, {"id": str(account_id)}))["syncNow"][
            "userErrors"
        ] == []
        worker = asyncio.create_task(burst_worker(make_settings()))
        await asyncio.wait_for(held.reached.wait(), 30)
        during = await client.execute(SYNC_NOW, {"id": str(account_id)})
        assert during["syncNow"]["userErrors"] == []
        held.released.set()
        await asyncio.wait_for(worker, 60)
        await burst_worker(make_settings())  # whatever the first worker left queued

        runs = [c for c in proxy.commands[mark:] if c.name == "LOGIN"]
        assert len(runs) == 2, proxy.names(mark)


async def test_a_no_change_sync_logs_nothing_at_info(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With thousands of accounts synced every minute, a sync that found nothing new must
    not write a line at INFO (arq's own start and finish lines of the job included)."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append_many("INBOX", [(make_message("one"), datetime.now(UTC))])
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        quiet_idle_crons()
        try:
            await burst_worker(make_settings())  # the initial sync
            caplog.clear()
            caplog.set_level(logging.INFO)
            assert await runtime.jobs.enqueue_sync(account_id)
            await burst_worker(make_settings())  # nothing changed on the server
        finally:
            arq_log = logging.getLogger("arq.worker")
            for installed in [f for f in arq_log.filters if isinstance(f, QuietIdleCrons)]:
                arq_log.removeFilter(installed)
    ours = [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and not r.name.startswith(("httpx", "pgserver"))
    ]
    # arq's worker start/stop lines of the burst worker itself are not per sync.
    per_sync = [r for r in ours if not _is_worker_lifecycle(r)]
    assert per_sync == [], [f"{r.name}: {r.getMessage()}" for r in per_sync]
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
        assert account is not None and account.status is AccountStatus.ACTIVE


def _is_worker_lifecycle(record: logging.LogRecord) -> bool:
    """arq's lines about the worker (start, functions, recorded totals), once per worker."""
    message = record.getMessage()
    return record.name == "arq.worker" and not any(
        f"{arrow} sync:" in message or f"{arrow} cron:" in message for arrow in "→←"
    )
