"""Job leases: proof of life that a worker renews for every job it runs.

arq marks a running job with an in-progress key that lives for the job timeout plus 10 s, so
a worker killed mid-job blocks that job for up to 15 minutes. Whether the job's worker is
dead is decided here from its lease, a Redis key the worker renews every
``RENEW_SECONDS`` while the job runs and deletes once arq has let go of the job: a marker
whose lease is gone was left by a worker that stopped renewing, i.e. died. (Deciding it from
the job's advisory lock raced with a job finishing: the lock is released a moment before arq
deletes its marker.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What a Redis that went away raises from redis-py (its ConnectionError, a refused or reset
# socket, a WATCH that failed because the connection dropped mid-transaction).
REDIS_FAULTS: tuple[type[BaseException], ...] = (RedisError, OSError)

LEASE_PREFIX = "mailsync:lease:"
LEASE_SECONDS = 20  # a job's lease outlives its worker by at most this long
RENEW_SECONDS = 5
# arq sets its marker a moment before the job starts and takes its lease: a marker without
# a lease is looked at twice, this far apart, before the job is called abandoned.
START_GRACE_SECONDS = 1.0


def lease_key(job_id: str) -> str:
    return f"{LEASE_PREFIX}{job_id}"


class JobLeases:
    """The leases of the jobs running in one worker process."""

    def __init__(self, redis: ArqRedis, owner: str) -> None:
        self._redis = redis
        self._owner = owner
        self.running: set[str] = set()

    async def taken(self, job_id: str) -> None:
        self.running.add(job_id)
        with contextlib.suppress(*REDIS_FAULTS):  # renewed again in RENEW_SECONDS
            await self._redis.set(lease_key(job_id), self._owner, ex=LEASE_SECONDS)

    async def released(self, job_id: str) -> None:
        """After arq deleted the job's in-progress marker (never before: see the module)."""
        self.running.discard(job_id)
        with contextlib.suppress(*REDIS_FAULTS):  # it expires by itself
            await self._redis.delete(lease_key(job_id))

    async def renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            if not self.running:
                continue
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for job_id in self.running:
                        pipe.set(lease_key(job_id), self._owner, ex=LEASE_SECONDS)
                    await pipe.execute()
            except REDIS_FAULTS:
                log.debug("lease renewal failed; trying again", exc_info=True)


async def _unleased_marker(redis: ArqRedis, job_id: str) -> bool:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(in_progress_key_prefix + job_id)
        pipe.exists(lease_key(job_id))
        marker, lease = await pipe.execute()
    return bool(marker) and not lease


async def abandoned(redis: ArqRedis, job_id: str) -> bool:
    """True when arq says the job is running but no live worker renews its lease."""
    if not await _unleased_marker(redis, job_id):
        return False
    await asyncio.sleep(START_GRACE_SECONDS)
    return await _unleased_marker(redis, job_id)


async def release(redis: ArqRedis, job_id: str) -> None:
    """Drop the in-progress marker of an :func:`abandoned` job, so that the next worker takes
    the job (it is still in arq's queue) now rather than after the job timeout."""
    await redis.delete(in_progress_key_prefix + job_id)


async def release_if_abandoned(redis: ArqRedis, job_id: str) -> bool:
    if not await abandoned(redis, job_id):
        return False
    await release(redis, job_id)
    return True
