"""Real `mailsync worker` processes with IDLE watchers, and waiting for what they do."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.models import AccountStatus, MailAccount, WatcherLease
from core.runtime import Runtime
from core.settings import Settings
from tests.sync.test_crash_safety import WorkerProcess, wait_until, worker_env

# Minutes: any syncCompleted within a test's seconds came from IDLE, not the schedule.
POLL_SECONDS = "600"
SYNC_COMPLETED = """
subscription($id: ID) {
  syncCompleted(accountId: $id) { account { id } newMessages updatedMessages removedMessages }
}"""


def idle_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = worker_env(settings)
    env.update(
        MAILSYNC_SYNC_INTERVAL_SECONDS=POLL_SECONDS,
        MAILSYNC_IDLE_LEASE_SECONDS="6",
        MAILSYNC_PARSE_PROCESSES="0",
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], tmp: Path, name: str = "worker") -> WorkerProcess:
    return WorkerProcess(env, tmp / f"{name}-{uuid.uuid4().hex[:6]}.log")


async def lease(runtime: Runtime, account_id: uuid.UUID) -> WatcherLease | None:
    async with runtime.session_factory() as session:
        return await session.get(WatcherLease, account_id)


async def watched_by(runtime: Runtime, account_id: uuid.UUID) -> str | None:
    """The worker holding the account in IDLE right now, if any."""
    row = await lease(runtime, account_id)
    now = datetime.now(UTC)
    if row is None or row.established_at is None or row.expires_at is None:
        return None
    return row.worker_id if row.expires_at > now else None


async def wait_watched(
    runtime: Runtime, account_id: uuid.UUID, within: float = 20, log: WorkerProcess | None = None
) -> str:
    async def watched() -> bool:
        return await watched_by(runtime, account_id) is not None

    await wait_until("the account to be watched in IDLE", watched, within=within, log=log)
    holder = await watched_by(runtime, account_id)
    assert holder is not None
    return holder


async def wait_status(
    runtime: Runtime,
    account_id: uuid.UUID,
    status: AccountStatus,
    within: float = 20,
    log: WorkerProcess | None = None,
) -> None:
    async def reached() -> bool:
        async with runtime.session_factory() as session:
            got = await session.scalar(
                select(MailAccount.status).where(MailAccount.id == account_id)
            )
        return got is status

    await wait_until(f"status {status}", reached, within=within, log=log)


def completed(event: dict[str, Any]) -> dict[str, Any]:
    assert event["type"] == "next", event
    data: dict[str, Any] = event["payload"]["data"]["syncCompleted"]
    return data


class DroppingProxy:
    """A loopback TCP proxy that can drop every connection it carries at once, as a NAT
    or a load balancer forgetting its flows would (a clean close towards the client)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def live(self) -> int:
        """Connections open through the proxy now."""
        return len(self._writers) // 2

    def drop_all(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except BaseException:
            client_w.transport.abort()
            raise
        self._writers |= {client_w, server_w}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        try:
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
        finally:
            self._writers -= {client_w, server_w}


async def wait_started(process: WorkerProcess, within: float = 60) -> None:
    """Until the worker runs (a loaded machine takes seconds to import it) and its IDLE
    supervisor has ticked once."""

    async def started() -> bool:
        return "Starting worker" in process.tail(200)

    await wait_until("the worker to start", started, within=within, log=process)
    await asyncio.sleep(1.5)
