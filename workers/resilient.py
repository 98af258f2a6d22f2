"""arq's Worker, made to outlive Redis blips and to drain on SIGTERM.

Written for arq 0.28 (``arq>=0.28,<0.29``): it overrides ``Worker._poll_iteration``,
``Worker.start_jobs`` and the two signal handlers, and undoes the try arq counts in its
``arq:retry:`` key for a job cancelled by shutdown; tests/workers/test_arq_internals.py fails,
naming this module, when the installed arq moves out of that range.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from signal import Signals
from typing import Any

from arq.constants import retry_key_prefix
from arq.typing import WorkerCoroutine
from arq.worker import Worker

from workers.leases import REDIS_FAULTS, JobLeases

log = logging.getLogger(__name__)

ARQ_VERSIONS = ((0, 28), (0, 29))  # [from, to): the range these overrides were written for
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0


class RedisOutage(Exception):
    """Redis stayed unreachable for longer than ``worker_redis_outage_seconds``."""


class OutageClock:
    """Backoff between reconnection attempts, and the time since Redis was last reachable."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit_seconds = limit_seconds
        self.since: float | None = None
        self._delay = RECONNECT_MIN_SECONDS

    def failed(self, exc: BaseException) -> float:
        """Seconds to wait before trying again; raises :class:`RedisOutage` once too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning(
                "Redis unreachable (%s); retrying for up to %.0f s",
                type(exc).__name__,
                self.limit_seconds,
            )
        down = now - self.since
        if down >= self.limit_seconds:
            raise RedisOutage(f"Redis unreachable for {down:.0f} s; giving up") from exc
        delay = self._delay
        self._delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        return min(delay, max(self.limit_seconds - down, 0.0) + 0.01)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("Redis reachable again after %.1f s", time.monotonic() - self.since)
        self.since = None
        self._delay = RECONNECT_MIN_SECONDS


class Lifecycle:
    """Shared by the worker and its jobs' ctx: whether a stop signal has arrived."""

    stopping: bool = False


LIFECYCLE = "mailsync_lifecycle"  # in ctx: the worker's Lifecycle
_SHUTDOWN_CANCELLED = "mailsync_cancelled_by_shutdown"  # in a job's ctx


def counts_shutdown_apart(job: WorkerCoroutine) -> WorkerCoroutine:
    """Marks a job cancelled because its worker is stopping, so that the worker gives back
    the try arq counted for it (see :meth:`MailsyncWorker.on_job_end`)."""

    @functools.wraps(job)
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await job(ctx, *args, **kwargs)
        except asyncio.CancelledError:
            lifecycle = ctx.get(LIFECYCLE)
            if isinstance(lifecycle, Lifecycle) and lifecycle.stopping:
                ctx[_SHUTDOWN_CANCELLED] = True
            raise

    return run


Hook = Callable[[dict[str, Any]], Awaitable[None]]


class MailsyncWorker(Worker):
    """A poll loop that survives Redis going away (running jobs carry on; polling resumes
    with backoff once Redis is back), and exits with :class:`RedisOutage` after the
    configured time without it. On SIGTERM/SIGINT it takes no new job, lets running ones
    finish for ``job_completion_wait`` seconds, then cancels them (wrap job functions in
    :func:`counts_shutdown_apart` so that such a cancellation is not counted as a try)."""

    def __init__(
        self,
        *args: Any,
        redis_outage_seconds: float,
        lease_owner: str,
        after_job_end: Hook | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args,
            on_job_start=self._job_started,
            on_job_end=self._job_ended,
            after_job_end=self._after_job_end,
            **kwargs,
        )
        self._then_after_job_end = after_job_end
        self.outage = OutageClock(redis_outage_seconds)
        self.lifecycle = Lifecycle()
        self.ctx[LIFECYCLE] = self.lifecycle
        self.leases = JobLeases(self.pool, lease_owner)
        self._renewing: asyncio.Task[None] | None = None

    async def main(self) -> None:
        if self._renewing is None:
            self._renewing = asyncio.create_task(self.leases.renew_forever())
        await super().main()

    async def stop_renewing(self) -> None:
        """Once no job runs any more (the leases of any left then expire by themselves)."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
            self._renewing = None

    async def _job_started(self, ctx: dict[str, Any]) -> None:
        await self.leases.taken(ctx["job_id"])

    async def _job_ended(self, ctx: dict[str, Any]) -> None:
        """A job cancelled by shutdown runs again without using up a try (arq counted one
        when it started the job, and after max_tries it refuses to run it)."""
        if ctx.get(_SHUTDOWN_CANCELLED):
            await self.pool.decr(retry_key_prefix + ctx["job_id"])
            log.info("%s: cancelled by shutdown; runs again, not counted a try", ctx["job_id"])

    async def _after_job_end(self, ctx: dict[str, Any]) -> None:
        await self.leases.released(ctx["job_id"])  # arq has deleted its marker by now
        if self._then_after_job_end is not None:
            await self._then_after_job_end(ctx)

    @property
    def stopping(self) -> bool:
        """A stop signal arrived: no new jobs; running ones are draining."""
        return self.lifecycle.stopping

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        self.lifecycle.stopping = True
        super().handle_sig_wait_for_completion(signum)

    def handle_sig(self, signum: Signals) -> None:
        self.lifecycle.stopping = True
        super().handle_sig(signum)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_FAULTS as exc:
            await asyncio.sleep(self.outage.failed(exc))
        else:
            self.outage.recovered()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq takes a semaphore slot and counts the job before its Redis transaction; a
        # connection error there would leak both, and after max_jobs of them the worker
        # would never take a job again.
        for job_id in job_ids:
            try:
                await super().start_jobs([job_id])
            except REDIS_FAULTS:
                if job_id.decode() not in self.tasks:
                    self.job_counter -= 1
                    self.sem.release()
                raise

    async def wait_for_redis(self) -> None:
        """Before starting: Redis reachable, or :class:`RedisOutage` after the limit."""
        while True:
            try:
                await self.pool.ping()
            except REDIS_FAULTS as exc:
                await asyncio.sleep(self.outage.failed(exc))
            else:
                self.outage.recovered()
                return
