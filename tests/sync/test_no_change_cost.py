"""What a sync that finds nothing new costs: with thousands of accounts synced every
minute, this is most of what the workers and PostgreSQL do (README, "Running at scale")."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core import metrics
from core.db import ping
from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from core.sync.folder import SyncTuning
from core.sync.run import AccountSyncRun
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.statements import recorded_statements
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.websocket import receives_nothing, subscribe, websocket
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]
STATUS_CHANGED = "subscription { accountStatusChanged { id status } }"
DEFAULTS = SyncTuning()  # what a worker runs with: a full flag scan every 5 minutes


@contextmanager
def counted_transactions(engine: AsyncEngine) -> Iterator[list[None]]:
    begun: list[None] = []

    def begin(_conn: Any) -> None:
        begun.append(None)

    event.listen(engine.sync_engine, "begin", begin)
    try:
        yield begun
    finally:
        event.remove(engine.sync_engine, "begin", begin)


async def _account(runtime: Runtime, account_id: uuid.UUID) -> MailAccount:
    async with runtime.session_factory() as session:
        account = await session.scalar(select(MailAccount).where(MailAccount.id == account_id))
    assert account is not None
    return account


async def test_a_no_change_sync_is_a_few_statements_and_announces_no_status(
    gql: GraphQLClient,
    runtime: Runtime,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """36 statements, 12.5 transactions and about 5 pool pings per no-change sync, and two
    accountStatusChanged events (ACTIVE, SYNCING, ACTIVE) for nothing, before; now at most
    8 statements in at most 3 transactions, no ping of a connection just used, the status
    left alone, and lastSyncedAt still advancing."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message(f"n{i}"), now) for i in range(3)])
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        assert await AccountSyncRun(runtime, account_id, DEFAULTS).run() is not None  # initial
        assert await AccountSyncRun(runtime, account_id, DEFAULTS).run() is not None  # warm
        before = await _account(runtime, account_id)
        assert before.status is AccountStatus.ACTIVE
        async with websocket(running_app, http) as ws:
            await subscribe(ws, runtime, owner, "status", STATUS_CHANGED)
            # (counted around the run alone: the app in this process checks connections out
            # of its own pool for the websocket, and may ping one that sat idle meanwhile)
            await ping(runtime.engine)  # "just used": the pool hands this one out next
            pings = metrics.POOL_PINGS._value.get()
            with (
                recorded_statements(runtime.engine) as statements,
                counted_transactions(runtime.engine) as transactions,
            ):
                result = await AccountSyncRun(runtime, account_id, DEFAULTS).run()
            pinged = metrics.POOL_PINGS._value.get() - pings
            await receives_nothing(ws, seconds=1.0)
    assert result is not None
    assert (result.counts.new, result.counts.updated, result.counts.removed) == (0, 0, 0)
    assert len(statements) <= 8, "\n\n".join(statements)
    assert len(transactions) <= 3, len(transactions)
    assert pinged == 0, "a connection just used was pinged"
    after = await _account(runtime, account_id)
    assert after.status is AccountStatus.ACTIVE
    assert before.last_synced_at is not None and after.last_synced_at is not None
    assert after.last_synced_at > before.last_synced_at
    assert after.sync_claim is None and after.sync_claimed_until is None
