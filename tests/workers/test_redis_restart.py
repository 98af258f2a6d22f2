"""Issue 19, item 1: a Redis restart does not kill `mailsync worker`; it reconnects with
backoff and carries on (new mail arrives again), and exits non-zero (3) only after
MAILSYNC_WORKER_REDIS_OUTAGE_SECONDS without Redis, so a supervisor can act."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Message
from core.runtime import Runtime
from core.settings import Settings
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.private_servers import PrivateRedis, private_redis
from tests.support.sync import Mailbox, connect_and_start
from tests.support.worker_process import worker_process
from tests.sync.test_sync_engine import make_message

pytestmark = pytest.mark.slow

NewUser = Callable[..., Awaitable[TestUser]]


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


async def stored(runtime: Runtime, account_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.account_id == account_id)
        )
    return count or 0


async def wait_for_messages(
    runtime: Runtime, account_id: uuid.UUID, count: int, seconds: float
) -> float:
    """Seconds until the account has ``count`` messages stored."""
    start = time.monotonic()
    while await stored(runtime, account_id) < count:
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{count} messages not stored within {seconds} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def test_worker_survives_a_redis_restart_and_new_mail_still_arrives(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    mailbox: Mailbox,
    redis: PrivateRedis,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    await mailbox.admin.append_many("INBOX", [(make_message("before"), datetime.now(UTC))])
    account_id = await connect_and_start(gql.as_user(owner.token), mailbox, labels=["INBOX"])
    settings = make_settings(redis_url=redis.url())
    async with worker_process(settings, tmp_path, sync_interval_seconds=1) as worker:
        await wait_for_messages(runtime, account_id, 1, seconds=30)

        await asyncio.to_thread(redis.restart, 2.0)  # down 2 s, back empty
        await mailbox.admin.append_many("INBOX", [(make_message("after"), datetime.now(UTC))])
        arrival = await wait_for_messages(runtime, account_id, 2, seconds=30)

        assert worker.alive, worker.output()[-3000:]
        print(f"new mail after a Redis restart: {arrival:.1f} s")  # the figure
        assert "Redis reachable again" in worker.output()


async def test_worker_exits_non_zero_after_the_configured_time_without_redis(
    runtime: Runtime,
    redis: PrivateRedis,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = make_settings(redis_url=redis.url())
    async with worker_process(settings, tmp_path, worker_redis_outage_seconds=3) as worker:
        await worker.wait_for_log("Starting worker", seconds=30)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.stop)
        stopped = time.monotonic()
        code = await worker.wait(seconds=20)
        took = time.monotonic() - stopped
    assert code == 3, worker.output()[-3000:]
    assert 3 <= took < 10, took
    assert "Redis unreachable for" in worker.output()
