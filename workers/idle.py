"""The IDLE watchers of one worker process: claiming leases, starting and stopping watchers.

One supervisor task per worker ticks every second (one short transaction): it stops the
watchers of accounts that were paused, removed, lost their INBOX selection or their lease,
claims free leases up to ``idle_per_worker``, and renews its leases every quarter lease.
A worker that dies stops renewing: its leases run out and the others claim them; a worker
that stops (SIGTERM) releases them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.worker import Worker

from core.db import session_scope
from core.realtime import leases
from core.realtime.watcher import InboxWatcher
from core.runtime import Runtime

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CONNECTING_AT_ONCE = 16  # watchers of one worker logging in at the same time


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class IdleSupervisor:
    def __init__(self, runtime: Runtime, *, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.worker_id = worker_id or new_worker_id()
        self.capacity = runtime.settings.idle_per_worker
        self.lease_seconds = runtime.settings.idle_lease_seconds
        self.watchers: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._stopping: asyncio.Task[None] | None = None
        self._gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
        self._releasing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # PostgreSQL blipped: the next tick tries again
                log.exception("IDLE supervisor tick failed")
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> None:
        now = time.monotonic()
        async with session_scope(self.runtime.session_factory) as session:
            if self.watchers and now - self._renewed >= self.lease_seconds / 4:
                await leases.renew(session, self.worker_id, self.lease_seconds)
                self._renewed = now
            gone = await leases.lost(session, self.worker_id, list(self.watchers))
            for account_id in gone:
                self._stop_watcher(account_id)
            await leases.release(session, self.worker_id, gone)
            claimed = await leases.claim(
                session, self.worker_id, self.capacity - len(self.watchers), self.lease_seconds
            )
        if not self.watchers and claimed:
            self._renewed = now
        for account_id in claimed:
            self._start_watcher(account_id)
        if gone or claimed:
            log.info("IDLE watchers: %d (+%d, -%d)", len(self.watchers), len(claimed), len(gone))

    def _start_watcher(self, account_id: uuid.UUID) -> None:
        watcher = InboxWatcher(self.runtime, account_id, self.worker_id, self._gate)
        task = asyncio.get_running_loop().create_task(watcher.run())
        self.watchers[account_id] = task
        task.add_done_callback(lambda done: self._watcher_ended(account_id, done))

    def _watcher_ended(self, account_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        if self.watchers.get(account_id) is not task:
            return
        del self.watchers[account_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("account %s: IDLE watcher failed", account_id, exc_info=task.exception())
        # Ended by itself (no IDLE, login refused, account gone): the lease goes back; the
        # claim takes only what is watchable, so it is not taken again for nothing.
        releasing = asyncio.get_running_loop().create_task(self._release([account_id]))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)

    async def _release(self, ids: list[uuid.UUID]) -> None:
        with contextlib.suppress(Exception):
            async with session_scope(self.runtime.session_factory) as session:
                await leases.release(session, self.worker_id, ids)

    def _stop_watcher(self, account_id: uuid.UUID) -> None:
        task = self.watchers.pop(account_id, None)
        if task is not None:
            task.cancel()

    def begin_stop(self, *_: Any) -> None:
        """Hand the watchers over now (arq's ``on_stop``, called on SIGTERM/SIGINT)."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self.stop())

    async def finish(self) -> None:
        """Stop (if ``begin_stop`` did not already) and wait until handed over."""
        self.begin_stop()
        assert self._stopping is not None
        await self._stopping

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        tasks = list(self.watchers.values())
        self.watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with session_scope(self.runtime.session_factory) as session:
                await leases.release_all(session, self.worker_id)
        except Exception:  # the leases then run out instead
            log.exception("could not release the IDLE leases")
        else:
            log.info("IDLE watchers handed over: %d", len(tasks))


@asynccontextmanager
async def watching_inboxes(
    runtime: Runtime, worker: Worker | None
) -> AsyncIterator[IdleSupervisor | None]:
    """Run this worker's IDLE watchers while the block runs (none without ``worker``, e.g.
    in burst mode, or when disabled). Once arq starts to stop (SIGTERM), the watchers are
    handed over at once, before running jobs are waited for."""
    settings = runtime.settings
    if worker is None or not settings.idle_enabled or settings.idle_per_worker == 0:
        yield None
        return
    supervisor = IdleSupervisor(runtime)
    supervisor.start()
    worker.on_stop = supervisor.begin_stop  # arq calls it from its SIGTERM/SIGINT handler
    try:
        yield supervisor
    finally:
        await supervisor.finish()
