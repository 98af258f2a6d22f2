"""Issue 19, item 7: SIGTERM drains. A worker stops taking jobs and lets running syncs finish
for MAILSYNC_WORKER_DRAIN_SECONDS before it cancels them; a job cancelled by shutdown runs
again without using up one of arq's tries (three shutdowns used to end in "max retries")."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from arq.constants import retry_key_prefix

from core.jobs import sync_job_id
from core.runtime import Runtime
from core.settings import Settings
from tests.support.factories import TestUser
from tests.support.gate_proxy import GateProxy
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, seen_through
from tests.support.worker_process import worker_process
from tests.sync.test_sync_engine import make_message
from tests.workers.test_redis_restart import stored, wait_for_messages

pytestmark = pytest.mark.slow

NewUser = Callable[..., Awaitable[TestUser]]


@pytest.fixture
async def gated_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> AsyncIterator[tuple[uuid.UUID, GateProxy]]:
    """A started account with 3 messages whose server sits behind a gate, closed now: the
    sync that starts next waits for the server's greeting until the test opens it."""
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        GateProxy(dovecot.host, dovecot.port) as gate,
    ):
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message(f"m{i}"), now) for i in range(3)])
        gate.open()
        owner = await new_user()
        client = gql.as_user(owner.token)
        account_id = await connect_and_start(client, seen_through(box, gate), labels=["INBOX"])
        gate.close_gate()
        yield account_id, gate


async def test_sigterm_lets_a_running_sync_finish(
    runtime: Runtime,
    gated_account: tuple[uuid.UUID, GateProxy],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    account_id, gate = gated_account
    connected = gate.accepted
    async with worker_process(make_settings(), tmp_path, worker_drain_seconds=10) as worker:
        await gate.wait_for_connections(connected + 1, seconds=30)  # the sync has begun
        await asyncio.sleep(0.5)
        worker.signal(signal.SIGTERM)
        await asyncio.sleep(1.5)  # the worker is draining: the job is still waiting
        assert worker.alive
        gate.open()
        code = await worker.wait(seconds=15)
    assert code == 0, worker.output()[-3000:]
    assert await stored(runtime, account_id) == 3, worker.output()[-3000:]
    assert "cancelled" not in worker.output()


async def test_a_sync_cancelled_by_shutdown_is_not_counted_as_a_try(
    runtime: Runtime,
    gated_account: tuple[uuid.UUID, GateProxy],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    account_id, gate = gated_account
    outputs = []
    for _ in range(3):  # the job's max_tries: three deploys in a row cut it short
        connected = gate.accepted
        async with worker_process(make_settings(), tmp_path, worker_drain_seconds=1) as worker:
            await gate.wait_for_connections(connected + 1, seconds=30)
            worker.signal(signal.SIGTERM)
            assert await worker.wait(seconds=15) == 0, worker.output()[-3000:]
            outputs.append(worker.output())
            assert "cancelled, will be run again" in outputs[-1], outputs[-1][-3000:]
    assert await stored(runtime, account_id) == 0
    tries = await runtime.redis.get(f"{retry_key_prefix}{sync_job_id(account_id)}")
    assert int(tries or 0) == 0, f"arq counted {tries!r} tries for runs cut short by shutdown"

    gate.open()
    async with worker_process(make_settings(), tmp_path) as worker:
        await wait_for_messages(runtime, account_id, 3, seconds=30)
        outputs.append(worker.output())
    every = "\n".join(outputs)
    assert "max retries" not in every, every[-3000:]
