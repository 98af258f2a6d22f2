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
import json
import logging
import os
import socket
import time

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What a Redis that went away raises from redis-py (its ConnectionError, a refused or reset
# socket, a WATCH that failed because the connection dropped mid-transaction).
REDIS_FAULTS: tuple[type[BaseException], ...] = (RedisError, OSError)

LEASE_PREFIX = "mailsync:lease:"
# A worker's own heartbeat (host, pid, jobs running), renewed with its leases: what
# `mailsync worker --check` looks for.
HEARTBEAT_PREFIX = "mailsync:worker:"
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
        """Renew the running jobs' leases and the worker's heartbeat every RENEW_SECONDS,
        from the worker's own event loop: a loop that is stuck stops both."""
        while True:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(heartbeat_key(self._owner), self._heartbeat(), ex=LEASE_SECONDS)
                    for job_id in self.running:
                        pipe.set(lease_key(job_id), self._owner, ex=LEASE_SECONDS)
                    await pipe.execute()
            except REDIS_FAULTS:
                log.debug("lease renewal failed; trying again", exc_info=True)
            await asyncio.sleep(RENEW_SECONDS)

    def _heartbeat(self) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "jobs": len(self.running),
                "at": time.time(),
            }
        )

    async def stopped(self) -> None:
        with contextlib.suppress(*REDIS_FAULTS):
            await self._redis.delete(heartbeat_key(self._owner))


def heartbeat_key(owner: str) -> str:
    return f"{HEARTBEAT_PREFIX}{owner}"


async def live_workers(redis: ArqRedis, host: str | None = None) -> list[dict[str, object]]:
    """The heartbeats of the workers alive now (renewed within LEASE_SECONDS), of ``host``
    only if given (``mailsync worker --check`` in a container asks about its own)."""
    found: list[dict[str, object]] = []
    async for key in redis.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=1000):
        raw = await redis.get(key)
        try:
            beat = json.loads(raw) if raw else None
        except ValueError:
            continue
        if isinstance(beat, dict) and (host is None or beat.get("host") == host):
            found.append(beat)
    return found


async def _unleased_markers(redis: ArqRedis, job_ids: list[str]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(in_progress_key_prefix + job_id)
            pipe.exists(lease_key(job_id))
        found = await pipe.execute()
    pairs = zip(job_ids, found[::2], found[1::2], strict=True)
    return [job_id for job_id, marker, lease in pairs if marker and not lease]


async def abandoned_among(redis: ArqRedis, job_ids: list[str]) -> list[str]:
    """The jobs arq says are running but whose lease no live worker renews (looked at
    twice, START_GRACE_SECONDS apart, in one round trip each)."""
    if not job_ids:
        return []
    suspects = await _unleased_markers(redis, job_ids)
    if not suspects:
        return []
    await asyncio.sleep(START_GRACE_SECONDS)
    return await _unleased_markers(redis, suspects)


async def release(redis: ArqRedis, job_id: str) -> None:
    """Drop the in-progress marker of an abandoned job, so that the next worker takes the
    job (it is still in arq's queue) now rather than after the job timeout."""
    await redis.delete(in_progress_key_prefix + job_id)
