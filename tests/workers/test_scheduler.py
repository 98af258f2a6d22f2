"""The scheduler (issue 20): due accounts are claimed in PostgreSQL, so schedulers in any
number of workers never queue one account twice, a queued job is not queued again every
tick, and the period is the interval counted from the previous due time."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from arq.constants import default_queue_name
from sqlalchemy import insert, select

from core.db import session_scope
from core.jobs import sync_job_id
from core.models import AccountStatus, ConnectionSecurity, MailAccount, PastSync, Sharing
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.websocket import subscribe, websocket
from tests.support.worker_process import worker_process
from tests.sync.test_sync_engine import make_message
from workers.sync_job import schedule_due_syncs

NewUser = Callable[..., Awaitable[TestUser]]


async def due_accounts(runtime: Runtime, owner_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``count`` syncing accounts, all due a minute ago (rows only: nothing syncs them)."""
    ids = [uuid.uuid4() for _ in range(count)]
    due = datetime.now(UTC) - timedelta(minutes=1)
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            insert(MailAccount),
            [
                {
                    "id": account_id,
                    "owner_id": owner_id,
                    "email_address": f"a{n}@example.test",
                    "status": AccountStatus.ACTIVE,
                    "sharing": Sharing.PRIVATE,
                    "past_sync": PastSync.ONE_MONTH,
                    "imap_host": "127.0.0.1",
                    "imap_port": 9,
                    "imap_security": ConnectionSecurity.NONE,
                    "imap_username": f"a{n}",
                    "imap_password_encrypted": b"never read",
                    "next_sync_at": due,
                }
                for n, account_id in enumerate(ids)
            ],
        )
    return ids


async def test_two_schedulers_at_once_queue_each_due_account_once(
    runtime: Runtime, new_user: NewUser, make_settings: Callable[..., Settings]
) -> None:
    """Two workers' schedulers tick together, three times: 3,000 due accounts are queued,
    each exactly once, and the later ticks find nothing more to queue."""
    owner = await new_user()
    ids = await due_accounts(runtime, owner.id, 3000)
    async with open_runtime(make_settings(), role="worker") as other:
        ticks = [
            await asyncio.gather(
                schedule_due_syncs({"runtime": runtime}), schedule_due_syncs({"runtime": other})
            )
            for _ in range(3)
        ]
    queued = [n for tick in ticks for n in tick]
    assert sum(queued) == 3000, ticks
    assert sum(ticks[1]) + sum(ticks[2]) == 0, "a queued account was queued again"
    members = await runtime.redis.zrange(default_queue_name, 0, -1)
    assert sorted(m.decode() for m in members) == sorted(sync_job_id(a) for a in ids)
    async with runtime.session_factory() as session:
        soonest = await session.scalar(select(MailAccount.next_sync_at).order_by("next_sync_at"))
    interval = timedelta(seconds=runtime.settings.sync_interval_seconds)
    assert soonest is not None and soonest > datetime.now(UTC) + interval / 2


SYNC_COMPLETED = """
subscription($id: ID) { syncCompleted(accountId: $id) { startedAt newMessages } }"""


async def test_the_period_is_the_interval_from_the_previous_due_time(
    gql: GraphQLClient,
    runtime: Runtime,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """With a 15 s interval the median gap between two syncs of one account was 25.7 s
    (finished + interval, plus a 10 s tick). Now each gap is within 10 % of the interval."""
    interval = 3.0
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append_many("INBOX", [(make_message("p"), datetime.now(UTC))])
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with (
            worker_process(
                make_settings(), tmp_path, sync_interval_seconds=interval, idle_enabled=False
            ),
            websocket(running_app, http) as ws,
        ):
            await subscribe(ws, runtime, owner, "done", SYNC_COMPLETED, {"id": str(account_id)})
            events = [await ws.receive_json(timeout=30) for _ in range(6)]
    starts = [
        datetime.fromisoformat(e["payload"]["data"]["syncCompleted"]["startedAt"]) for e in events
    ]
    # The first run is startSync's own; from the second on the scheduler's.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts[1:])]
    assert all(abs(gap - interval) <= interval / 10 for gap in gaps), gaps


async def test_a_sync_asked_for_goes_ahead_of_a_scheduled_backlog(runtime: Runtime) -> None:
    """200 accounts pushed by IDLE at 200 accounts: p90 16.6 s, because a push for an
    account whose scheduled job was still waiting merged into that job, behind every
    account due before it. The asked-for run (or the waiting job it merges into) now goes
    to the front of the queue."""
    backlog = [uuid.uuid4() for _ in range(3)]
    due = datetime.now(UTC) - timedelta(seconds=30)
    busy = await runtime.jobs.enqueue_scheduled_syncs(
        [(a, due + timedelta(seconds=n)) for n, a in enumerate(backlog)]
    )
    assert busy == []
    pushed = backlog[-1]
    assert await runtime.jobs.enqueue_sync(pushed, ["INBOX"]) is False  # merged
    fresh = uuid.uuid4()
    assert await runtime.jobs.enqueue_sync(fresh) is True
    order = [m.decode() for m in await runtime.redis.zrange(default_queue_name, 0, -1)]
    assert set(order[:2]) == {sync_job_id(pushed), sync_job_id(fresh)}, order
    # Late jobs are all due now (equal scores): behind the asked-for ones, in any order.
    assert set(order[2:]) == {sync_job_id(a) for a in backlog[:2]}, order
