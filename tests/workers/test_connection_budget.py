"""The connection budget (issue 20): a running job uses at most one PostgreSQL connection
at a time, so a worker stays within its pool (MAILSYNC_DB_POOL_SIZE, 10) with no overflow
connections opened and closed, also when every account is due at once. Before, each sync
held two (its advisory lock's own and its session's), one worker reached 19 backends, and
1,000 syncs opened 520-850 new ones."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core.models import AccountStatus, MailAccount, Message, Plan
from core.runtime import Runtime
from core.settings import Settings
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.worker_process import worker_process
from tests.sync.test_sync_engine import make_message

pytestmark = pytest.mark.slow

NewUser = Callable[..., Awaitable[TestUser]]
ACCOUNTS = 30  # 6 users of the ENTERPRISE plan, 5 accounts each, each its own mailbox
MESSAGES = 5
POOL_SIZE = 10  # the default
WORKER_NAME = re.compile(r"^mailsync worker (\d+)$")


async def backends_by_worker(runtime: Runtime) -> dict[int, set[int]]:
    """{worker pid: its backends' pids} from pg_stat_activity (application_name)."""
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT application_name, pid FROM pg_stat_activity"
                " WHERE datname = current_database()"
            )
        )
    found: dict[int, set[int]] = defaultdict(set)
    for name, pid in rows:
        match = WORKER_NAME.match(name or "")
        if match:
            found[int(match.group(1))].add(pid)
    return found


async def synced_accounts(runtime: Runtime, account_ids: list[uuid.UUID]) -> int:
    async with runtime.session_factory() as session:
        counts = await session.execute(
            select(MailAccount.id, MailAccount.status, func.count(Message.id))
            .outerjoin(Message, Message.account_id == MailAccount.id)
            .where(MailAccount.id.in_(account_ids))
            .group_by(MailAccount.id, MailAccount.status)
        )
        return sum(1 for _, status, n in counts if status is AccountStatus.ACTIVE and n == MESSAGES)


async def test_two_workers_stay_within_their_pools_when_every_account_is_due(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    account_ids: list[uuid.UUID] = []
    async with contextlib.AsyncExitStack() as stack:
        now = datetime.now(UTC)
        for n in range(ACCOUNTS):
            if n % 5 == 0:
                client = gql.as_user((await new_user(plan=Plan.ENTERPRISE)).token)
            box = await stack.enter_async_context(private_mailbox("dovecot", dovecot, tmp_path))
            await box.admin.append_many(
                "INBOX", [(make_message(f"b{n}-{i}"), now) for i in range(MESSAGES)]
            )
            account_ids.append(await connect_and_start(client, box, labels=["INBOX"]))
        # Every account is due now (startSync queued each), and due again every 2 s.
        settings = make_settings()
        seen: dict[int, set[int]] = defaultdict(set)  # worker pid: every backend it had
        most: dict[int, int] = defaultdict(int)  # worker pid: most backends at once
        async with (
            worker_process(settings, tmp_path, sync_interval_seconds=2) as first,
            worker_process(settings, tmp_path, sync_interval_seconds=2) as second,
        ):
            pids = {first.process.pid, second.process.pid}
            deadline = time.monotonic() + 120
            settled_at: float | None = None
            while settled_at is None or time.monotonic() < settled_at + 6:  # 3 more passes
                for pid, backends in (await backends_by_worker(runtime)).items():
                    seen[pid] |= backends
                    most[pid] = max(most[pid], len(backends))
                if settled_at is None and await synced_accounts(runtime, account_ids) == ACCOUNTS:
                    settled_at = time.monotonic()
                assert time.monotonic() < deadline, (
                    f"{await synced_accounts(runtime, account_ids)} of {ACCOUNTS} synced\n"
                    f"{first.output()[-2000:]}\n{second.output()[-2000:]}"
                )
                assert first.alive and second.alive
                await asyncio.sleep(0.05)
    print(f"most backends at once {dict(most)}, backends ever {[len(s) for s in seen.values()]}")
    assert set(most) == pids, most
    for pid in pids:
        assert most[pid] <= POOL_SIZE, (pid, most[pid])
        # No churn: the backends a worker ever had are its pool's (a few more if a
        # connection was replaced), not hundreds of overflow connections.
        assert len(seen[pid]) <= POOL_SIZE + 2, (pid, len(seen[pid]))
