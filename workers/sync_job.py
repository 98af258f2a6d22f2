"""The arq side of syncing: the job that runs one account's sync, and the scheduler cron."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db import session_scope
from core.jobs import sync_job_id
from core.logs import job_logging
from core.runtime import Runtime
from core.sync import repository
from core.sync.claims import claimed_among
from core.sync.folder import SyncTuning
from core.sync.run import sync_account as run_sync
from core.sync.run import tuning_for
from workers import leases

log = logging.getLogger(__name__)

# The scheduler's tick (the worker's cron runs it every second, in one worker at a time:
# arq's cron job ids are unique). Each tick claims what falls due before the next one and
# queues it to start at its due time, so a period is the interval to within arq's poll
# delay, and a tick with 2,000 accounts due costs two statements and four script calls.
SCHEDULE_EVERY = timedelta(seconds=1)
SCHEDULE_BATCH = 2000
# A run is checkpointed per chunk, so a run cut short loses little; a short timeout also
# bounds how long a job abandoned by a killed worker would otherwise stay blocked.
SYNC_JOB_TIMEOUT_SECONDS = 900


AGAIN = "mailsync_sync_again"  # in a job's ctx: the account to queue once arq lets go


async def sync_account(
    ctx: dict[str, Any],
    account_id: str,
    folders: list[str] | None = None,
    due_at: float | None = None,
) -> dict[str, object] | None:
    """``due_at``: when the scheduler found the account due (epoch seconds)."""
    runtime: Runtime = ctx["runtime"]
    tuning: SyncTuning = ctx.get("tuning") or tuning_for(runtime.settings)
    due = None if due_at is None else datetime.fromtimestamp(due_at, UTC)
    with job_logging(account_id=account_id, job_try=ctx.get("job_try")):
        result = await run_sync(runtime, uuid.UUID(account_id), tuning, folders=folders, due_at=due)
    if result is None:
        return None
    if result.again:
        # The job id is still this job's until arq has finished it: queue in after_job_end.
        ctx[AGAIN] = result.account_id
    return {
        "new": result.counts.new,
        "updated": result.counts.updated,
        "removed": result.counts.removed,
    }


async def queue_sync_asked_during_the_job(ctx: dict[str, Any]) -> None:
    """arq's after_job_end: a sync asked for while the job ran is queued now."""
    account_id = ctx.get(AGAIN)
    if isinstance(account_id, uuid.UUID):
        runtime: Runtime = ctx["runtime"]
        await runtime.jobs.enqueue_sync(account_id)


async def schedule_due_syncs(ctx: dict[str, Any]) -> int:
    """Claim the accounts due before the next tick in PostgreSQL (the source of truth, so a
    flushed or restarted Redis loses no account) and queue their syncs; free the jobs of
    workers that died. The number queued.

    A claimed account is not claimed again for an interval, so a queued job is not queued
    again at every tick; if this process dies between the claim and the enqueue, those
    accounts wait one interval."""
    runtime: Runtime = ctx["runtime"]
    interval = timedelta(seconds=runtime.settings.sync_interval_seconds)
    async with session_scope(runtime.session_factory) as session:
        due = await repository.claim_due_accounts(
            session, within=SCHEDULE_EVERY, interval=interval, limit=SCHEDULE_BATCH
        )
        ran_out = await repository.ran_out_claims(session, SCHEDULE_BATCH)
    busy = await runtime.jobs.enqueue_scheduled_syncs([(d.account_id, d.due_at) for d in due])
    await release_abandoned(runtime, sorted(set(busy) | set(ran_out)))
    if ran_out:
        async with session_scope(runtime.session_factory) as session:
            await repository.clear_ran_out_claims(session, ran_out)
    queued = len(due) - len(busy)
    if queued:
        log.debug("scheduled %d due account syncs", queued)
    return queued


async def release_abandoned(runtime: Runtime, account_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """A worker killed mid-job leaves arq's in-progress marker until the job timeout runs
    out, and nobody may take the job meanwhile. Its lease (workers/leases.py) tells the
    truth: marker set but no live worker renewing the lease, and no live claim on the
    account (core/sync/claims.py), means no one is running it; drop the marker and let the
    next worker take it. The accounts whose job was released."""
    by_job = {sync_job_id(a): a for a in account_ids}
    suspects = [by_job[j] for j in await leases.abandoned_among(runtime.redis, list(by_job))]
    if not suspects:
        return []
    async with runtime.session_factory() as session:
        held = await claimed_among(session, suspects)
    released = []
    for account_id in suspects:
        if account_id in held:
            continue
        await leases.release(runtime.redis, sync_job_id(account_id))
        log.warning("account %s: released a sync job abandoned by a dead worker", account_id)
        released.append(account_id)
    return released
