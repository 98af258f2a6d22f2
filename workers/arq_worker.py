"""The arq Worker: its job functions, crons and settings, and running it.

arq is in maintenance-only mode upstream, so it stays in ``workers/`` (and ``core/jobs.py``,
which enqueues): the jobs are thin adapters from arq to core's entry points.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from arq import cron
from arq.worker import func

from core.jobs import SEND_OUTGOING, SYNC_ACCOUNT
from core.metrics import serve_worker_metrics, track_pool
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from core.sync.parse_pool import INLINE, MessageParser
from core.sync.run import tuning_for
from workers.idle import watching_inboxes
from workers.leases import REDIS_FAULTS
from workers.resilient import MailsyncWorker, RedisOutage, counts_shutdown_apart
from workers.send_job import (
    SEND_JOB_MAX_TRIES,
    SEND_JOB_TIMEOUT_SECONDS,
    requeue_unfinished_sends,
    send_outgoing,
)
from workers.sync_job import (
    SYNC_JOB_TIMEOUT_SECONDS,
    queue_sync_asked_during_the_job,
    schedule_due_syncs,
    sync_account,
)

log = logging.getLogger(__name__)

POLL_DELAY_SECONDS = 0.05  # arq's 0.5 s default delays every job start by up to that much


# arq 0.28 logs a start and a finish line for every job: "  0.01s → cron:name()" and
# "  0.00s ← cron:name ● 0", "  0.02s → sync:<account>:sync_account(...)" for a sync.
# tests/sync/test_worker.py fails when that format moves.
_ARQ_CRON_LINE = re.compile(r"^\s*-?\d+\.\d+s [→←] (cron|sync):")


class QuietIdleCrons(logging.Filter):
    """Drops arq's INFO start and finish lines of cron jobs and of sync jobs (the
    scheduler's two lines every 10 s and two per sync, most of them finding nothing new,
    buried the log: about 14 million lines a day at 5,000 accounts). The job functions log
    what they did, and failures stay (arq logs them at WARNING or above), so an idle
    worker and a no-change sync are silent at INFO; at DEBUG arq's lines are all kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or logging.getLogger().isEnabledFor(logging.DEBUG):
            return True  # MAILSYNC_LOG_LEVEL=DEBUG: every job's start and end
        return not _ARQ_CRON_LINE.match(record.getMessage())


def quiet_idle_crons() -> None:
    arq_log = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietIdleCrons) for f in arq_log.filters):
        arq_log.addFilter(QuietIdleCrons())


def build_worker(
    runtime: Runtime, *, burst: bool = False, parser: MessageParser = INLINE
) -> MailsyncWorker:
    return MailsyncWorker(
        functions=[
            func(
                counts_shutdown_apart(sync_account),
                name=SYNC_ACCOUNT,
                keep_result=0,
                max_tries=3,
                timeout=SYNC_JOB_TIMEOUT_SECONDS,
            ),
            func(
                counts_shutdown_apart(send_outgoing),
                name=SEND_OUTGOING,
                keep_result=0,
                max_tries=SEND_JOB_MAX_TRIES,
                timeout=SEND_JOB_TIMEOUT_SECONDS,
            ),
        ],
        cron_jobs=[
            # Every second (one worker takes each tick: arq's cron job ids are unique). A
            # burst worker stops once its queue is empty, which a cron job queued ahead of
            # every second never lets happen: it schedules every 10 s, as it used to.
            cron(
                schedule_due_syncs,
                second=set(range(0, 60, 10 if burst else 1)),
                run_at_startup=True,
            ),
            # Every 10 s, between the scheduler's runs: a send whose job Redis lost, or whose
            # worker died, is delivered (or settled) within half a minute.
            cron(requeue_unfinished_sends, second=set(range(5, 60, 10))),
        ],
        redis_pool=runtime.redis,
        ctx={"runtime": runtime, "tuning": tuning_for(runtime.settings, parser)},
        burst=burst,
        handle_signals=not burst,
        poll_delay=POLL_DELAY_SECONDS,
        keep_result=0,
        max_jobs=runtime.settings.worker_max_jobs,
        after_job_end=queue_sync_asked_during_the_job,
        redis_outage_seconds=runtime.settings.worker_redis_outage_seconds,
        lease_owner=runtime.redis_client_name,
        # SIGTERM: no new jobs, running ones get this long to finish (arq's default of 0
        # cancelled them at once, losing the work since their last checkpoint).
        job_completion_wait=runtime.settings.worker_drain_seconds,
    )


async def run_worker(settings: Settings, *, burst: bool = False) -> None:
    quiet_idle_crons()
    if settings.worker_metrics_port:
        serve_worker_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
    parser = MessageParser(settings.parse_processes)
    try:
        async with open_runtime(settings, role="worker") as runtime:
            track_pool(runtime.engine)
            worker = build_worker(runtime, burst=burst, parser=parser)
            async with watching_inboxes(runtime, None if burst else worker):
                await run_until_done(worker, runtime)
    finally:
        parser.close()


async def run_until_done(worker: MailsyncWorker, runtime: Runtime) -> None:
    """Run the worker; on the way out wait for running jobs. Not ``Worker.close``: the Redis
    pool is the runtime's (closed by it), and arq closes it with a deprecated call.
    Raises :class:`workers.resilient.RedisOutage` after too long without Redis."""
    try:
        await worker.wait_for_redis()
        await worker.async_run()
    except RedisOutage:
        for task in worker.tasks.values():  # they cannot finish their jobs in arq anyway
            task.cancel()
        raise
    finally:
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.stop_renewing()
        with contextlib.suppress(*REDIS_FAULTS):  # going away because Redis is: nothing to do
            await runtime.redis.delete(worker.health_check_key)
