"""Enqueueing background jobs (arq over Redis). Outside ``workers/``, only this module and
``core/runtime.py`` (which opens the pool) use arq.

Job ids make enqueueing idempotent: while ``sync:{account}`` is queued or running, another
enqueue of it is a no-op. Call these only after the transaction that made the work due has
committed (see ``core.db.after_commit``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import after_commit

SYNC_ACCOUNT = "sync_account"
SEND_OUTGOING = "send_outgoing"
AHEAD_OF_THE_QUEUE = timedelta(hours=1)


# Queues many sync jobs in one round trip, each exactly as arq's enqueue_job would (the job
# key with its payload and lifetime, then the queue entry), and only where neither the job
# nor its result is there already: atomic per job, like enqueue_job's WATCH/MULTI, which
# costs four round trips a job (10,000 due accounts took seconds of a worker's loop).
# KEYS: the queue, then each job's key and result key; ARGV: each job's id, payload, score,
# lifetime in ms. Returns 1 for a job queued, 0 for one already there.
_ENQUEUE_MANY = """
local out = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local job_key, result_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  if redis.call('exists', job_key) == 0 and redis.call('exists', result_key) == 0 then
    redis.call('psetex', job_key, ARGV[4 + 4 * i], ARGV[2 + 4 * i])
    redis.call('zadd', KEYS[1], ARGV[3 + 4 * i], ARGV[1 + 4 * i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""
ENQUEUE_BATCH = 500  # jobs per script call: keeps each call to Redis short


def sync_job_id(account_id: uuid.UUID) -> str:
    return f"sync:{account_id}"


def send_job_id(outgoing_id: uuid.UUID) -> str:
    return f"send:{outgoing_id}"


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis
        self._enqueue_many = redis.register_script(_ENQUEUE_MANY)  # EVALSHA, loaded once

    async def enqueue_sync(
        self, account_id: uuid.UUID, folders: Sequence[str] | None = None
    ) -> bool:
        """True when queued now, False when that account's sync is already queued/running.
        ``folders``: a run of only these selected folders, what an IDLE watcher heard of;
        such a run goes ahead of the scheduled ones (someone is waiting for it)."""
        if folders is None:
            job = await self._redis.enqueue_job(
                SYNC_ACCOUNT, str(account_id), _job_id=sync_job_id(account_id)
            )
        else:
            # arq takes due jobs in score order (the time they are due): one due an hour ago
            # is taken first. It then logs it as "delayed=3600s". _expires keeps its key's
            # lifetime what it would be (arq derives it from the score otherwise).
            job = await self._redis.enqueue_job(
                SYNC_ACCOUNT,
                str(account_id),
                list(folders),
                _job_id=sync_job_id(account_id),
                _defer_until=datetime.now(UTC) - AHEAD_OF_THE_QUEUE,
                _expires=timedelta(days=1),
            )
        return job is not None

    async def enqueue_scheduled_syncs(
        self, due: Sequence[tuple[uuid.UUID, datetime]]
    ) -> list[uuid.UUID]:
        """Queue the sync of each (account, due time), to start at its due time (at once if
        that has passed), in a few round trips; the accounts whose sync was queued or
        running already. The job gets its due time (``due_at``, epoch seconds): the run's
        lag, and the start of its next period."""
        redis = self._redis
        now_ms = timestamp_ms()
        busy: list[uuid.UUID] = []
        for start in range(0, len(due), ENQUEUE_BATCH):
            batch = due[start : start + ENQUEUE_BATCH]
            keys: list[str] = [redis.default_queue_name]
            argv: list[str | bytes | int] = []
            for account_id, due_at in batch:
                job_id = sync_job_id(account_id)
                score = max(to_unix_ms(due_at), now_ms)
                payload = serialize_job(
                    SYNC_ACCOUNT,
                    (str(account_id),),
                    {"due_at": due_at.timestamp()},
                    None,
                    now_ms,
                    serializer=redis.job_serializer,
                )
                keys += [job_key_prefix + job_id, result_key_prefix + job_id]
                argv += [job_id, payload, score, score - now_ms + redis.expires_extra_ms]
            queued = await self._enqueue_many(keys=keys, args=argv)
            busy += [a for (a, _), ok in zip(batch, queued, strict=True) if not ok]
        return busy

    async def enqueue_send(self, outgoing_id: uuid.UUID) -> bool:
        """Deliver an outgoing message; False when its delivery is already queued/running."""
        job = await self._redis.enqueue_job(
            SEND_OUTGOING, str(outgoing_id), _job_id=send_job_id(outgoing_id)
        )
        return job is not None


def enqueue_sync_after_commit(session: AsyncSession, jobs: JobQueue, account_id: uuid.UUID) -> None:
    """Queue the account's sync once ``session``'s transaction has committed."""

    async def enqueue() -> None:
        await jobs.enqueue_sync(account_id)

    after_commit(session, enqueue)
