"""The arq side of sending: deliver one outgoing message, and requeue forgotten ones."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.worker import Retry

from core.jobs import send_job_id
from core.logs import job_logging
from core.runtime import Runtime
from core.sending import repository
from core.sending.delivery import OutgoingDelivery
from workers import leases

log = logging.getLogger(__name__)

# The attempts are counted in PostgreSQL (MAILSYNC_SEND_MAX_ATTEMPTS); arq's own count only
# has to stay out of the way, with room for runs cut short by a dying worker.
SEND_JOB_MAX_TRIES = 50
SEND_JOB_TIMEOUT_SECONDS = 300
REQUEUE_AFTER = timedelta(minutes=10)  # longer than any backoff: only forgotten jobs
REQUEUE_BATCH = 1000


async def send_outgoing(ctx: dict[str, Any], outgoing_id: str) -> None:
    runtime: Runtime = ctx["runtime"]
    with job_logging(outgoing_id=outgoing_id, job_try=ctx.get("job_try")):
        retry_in = await OutgoingDelivery(runtime, uuid.UUID(outgoing_id)).run()
    if retry_in is not None:
        raise Retry(defer=retry_in)


async def requeue_unfinished_sends(ctx: dict[str, Any]) -> int:
    """Queue again what PostgreSQL says is unfinished but Redis may have lost (a flush, a
    restart): at once when no attempt started, else once it has rested REQUEUE_AFTER. The
    job id makes this a no-op for deliveries that are queued or running. A delivery whose
    worker died (its lease expired) is released, so the next worker finishes it now: files
    the Sent copy, or settles a message cut off inside DATA as possibly delivered."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session:
        rows = await repository.unfinished(
            session, datetime.now(UTC) - REQUEUE_AFTER, REQUEUE_BATCH
        )
    queued = 0
    for outgoing_id, ready in rows:
        if await leases.release_if_abandoned(runtime.redis, send_job_id(outgoing_id)):
            log.warning("outgoing %s: released a send job abandoned by a dead worker", outgoing_id)
        elif ready and await runtime.jobs.enqueue_send(outgoing_id):
            queued += 1
    if queued:
        log.info("requeued %d unfinished outgoing messages", queued)
    return queued
