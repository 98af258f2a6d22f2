"""Issue 19, item 6: "released a sync job abandoned by a dead worker" means a dead worker.
The scheduler decides it from a lease the running worker renews, so a check that falls
between a finished job's lock release and arq deleting its in-progress marker (the race
that released live jobs) sees a live job. A worker that really died: tests/sync/
test_crash_safety.py (its job is released once its lease expires)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.jobs import sync_job_id
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.sync import Mailbox, connect_and_start
from workers.arq_worker import build_worker, run_until_done
from workers.leases import lease_key
from workers.sync_job import release_abandoned

NewUser = Callable[..., Awaitable[TestUser]]


async def test_a_sync_job_that_just_finished_is_not_released_as_abandoned(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    mailbox: Mailbox,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = await new_user()
    account_id = await connect_and_start(gql.as_user(owner.token), mailbox, labels=["INBOX"])
    job_id = sync_job_id(account_id)
    verdicts: list[bool] = []
    async with open_runtime(make_settings()) as worker_runtime:
        worker = build_worker(worker_runtime, burst=True)
        finish_job = worker.finish_job

        async def scheduler_checks_first(done_id: str, *args: Any) -> None:
            if done_id == job_id:
                # The job returned and its claim is cleared; arq's marker is still
                # there: the moment the scheduler used to take for a dead worker.
                verdicts.append(bool(await release_abandoned(runtime, [account_id])))
            await finish_job(done_id, *args)

        worker.finish_job = scheduler_checks_first  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="workers.sync_job"):
            await run_until_done(worker, worker_runtime)
    assert verdicts == [False]
    assert "abandoned by a dead worker" not in caplog.text
    assert not await runtime.redis.exists(lease_key(job_id)), "the lease outlived its job"
