"""The arq side of the workers: job functions, the scheduler cron, and the Worker.

arq is in maintenance-only mode upstream, so it stays behind this module (and
``core.jobs``): the sync engine itself knows nothing about it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import cron
from arq.constants import in_progress_key_prefix as IN_PROGRESS_PREFIX
from arq.worker import Worker, func

from core.jobs import SEND_OUTGOING, SYNC_ACCOUNT, sync_job_id
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from core.sync import repository
from core.sync.folder import SyncTuning
from core.sync.locks import account_lock
from core.sync.parse_pool import INLINE, MessageParser
from workers.send_job import (
    SEND_JOB_MAX_TRIES,
    SEND_JOB_TIMEOUT_SECONDS,
    requeue_unfinished_sends,
    send_outgoing,
)
from workers.sync_run import AccountSyncRun

log = logging.getLogger(__name__)

SCHEDULE_BATCH = 1000
# A run is checkpointed per chunk, so a run cut short loses little; a short timeout also
# bounds how long a job abandoned by a killed worker would otherwise stay blocked.
SYNC_JOB_TIMEOUT_SECONDS = 900
POLL_DELAY_SECONDS = 0.05  # arq's 0.5 s default delays every job start by up to that much


def tuning_for(settings: Settings, parser: MessageParser = INLINE) -> SyncTuning:
    return SyncTuning(
        full_flag_scan_every=timedelta(seconds=settings.flag_scan_interval_seconds),
        parser=parser,
    )


async def sync_account(ctx: dict[str, Any], account_id: str) -> dict[str, object] | None:
    runtime: Runtime = ctx["runtime"]
    tuning: SyncTuning = ctx.get("tuning") or tuning_for(runtime.settings)
    result = await AccountSyncRun(runtime, uuid.UUID(account_id), tuning).run()
    if result is None:
        return None
    return {
        "new": result.counts.new,
        "updated": result.counts.updated,
        "removed": result.counts.removed,
    }


async def schedule_due_syncs(ctx: dict[str, Any]) -> int:
    """Enqueue every account whose sync is due, from PostgreSQL (the source of truth), so a
    flushed or restarted Redis loses no account. Job ids make repeats harmless."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session:
        due = await repository.due_account_ids(session, datetime.now(UTC), SCHEDULE_BATCH)
    queued = 0
    for account_id in due:
        if await runtime.jobs.enqueue_sync(account_id):
            queued += 1
        else:
            await release_if_abandoned(runtime, account_id)
    if queued:
        log.info("scheduled %d due account syncs", queued)
    return queued


async def release_if_abandoned(runtime: Runtime, account_id: uuid.UUID) -> bool:
    """A worker killed mid-job leaves arq's in-progress marker until the job timeout runs
    out, and nobody may take the job meanwhile. The account's advisory lock tells the
    truth: marker set but lock free means no one is running it, so drop the marker and
    let the next worker take the job (a race with a starting worker is harmless: the lock
    still lets only one of them sync)."""
    marker = f"{IN_PROGRESS_PREFIX}{sync_job_id(account_id)}"
    if not await runtime.redis.exists(marker):
        return False
    async with account_lock(runtime, account_id) as free:
        if not free:
            return False
    await runtime.redis.delete(marker)
    log.warning("account %s: released a sync job abandoned by a dead worker", account_id)
    return True


# arq 0.28 logs a start and a finish line for every job: "  0.01s → cron:name()" and
# "  0.00s ← cron:name ● 0". tests/sync/test_worker.py fails when that format moves.
_ARQ_CRON_LINE = re.compile(r"^\s*-?\d+\.\d+s [→←] cron:")


class QuietIdleCrons(logging.Filter):
    """Drops arq's start and finish lines of cron jobs (the scheduler's two lines every 10 s
    buried the log): the cron functions log what they did, so an idle worker is silent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _ARQ_CRON_LINE.match(record.getMessage())


def quiet_idle_crons() -> None:
    arq_log = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietIdleCrons) for f in arq_log.filters):
        arq_log.addFilter(QuietIdleCrons())


def build_worker(
    runtime: Runtime, *, burst: bool = False, parser: MessageParser = INLINE
) -> Worker:
    return Worker(
        functions=[
            func(
                sync_account,
                name=SYNC_ACCOUNT,
                keep_result=0,
                max_tries=3,
                timeout=SYNC_JOB_TIMEOUT_SECONDS,
            ),
            func(
                send_outgoing,
                name=SEND_OUTGOING,
                keep_result=0,
                max_tries=SEND_JOB_MAX_TRIES,
                timeout=SEND_JOB_TIMEOUT_SECONDS,
            ),
        ],
        cron_jobs=[
            cron(schedule_due_syncs, second=set(range(0, 60, 10)), run_at_startup=True),
            cron(requeue_unfinished_sends, minute=None, second=30),
        ],
        redis_pool=runtime.redis,
        ctx={"runtime": runtime, "tuning": tuning_for(runtime.settings, parser)},
        burst=burst,
        handle_signals=not burst,
        poll_delay=POLL_DELAY_SECONDS,
        keep_result=0,
    )


async def run_worker(settings: Settings, *, burst: bool = False) -> None:
    quiet_idle_crons()
    parser = MessageParser(settings.parse_processes)
    try:
        async with open_runtime(settings) as runtime:
            await run_until_done(build_worker(runtime, burst=burst, parser=parser), runtime)
    finally:
        parser.close()


async def run_until_done(worker: Worker, runtime: Runtime) -> None:
    """Run the worker; on the way out wait for running jobs. Not ``Worker.close``: the Redis
    pool is the runtime's (closed by it), and arq closes it with a deprecated call."""
    try:
        await worker.async_run()
    finally:
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await runtime.redis.delete(worker.health_check_key)
