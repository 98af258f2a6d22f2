"""A loopback TCP proxy that can cut a connection after a number of server->client bytes.

Put it between a client and a server (``CuttingProxy(host, port)``, then point the client
at ``proxy.host``/``proxy.port``); ``arm(n)`` makes the next connection it accepts drop
after exactly ``n`` bytes from the server, either with a clean close (FIN) or a reset
(RST). ``hide_capabilities`` takes IMAP capabilities out of every CAPABILITY the server
announces (to make a client take another code path, e.g. CONDSTORE without QRESYNC).
Everything else is passed through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from tests.support.streams import close_writers

CutMode = Literal["close", "reset"]
_CHUNK = 64 * 1024
_LINE_LIMIT = 64 * 1024 * 1024  # a line may be a whole literal when hiding capabilities


@dataclass
class ConnectionStats:
    to_client: int = 0  # server -> client bytes passed on
    to_server: int = 0
    cut: bool = False


@dataclass
class _Plan:
    after: int
    mode: CutMode


@dataclass
class CuttingProxy:
    target_host: str
    target_port: int
    host: str = "127.0.0.1"
    port: int = 0
    hide_capabilities: tuple[str, ...] = ()
    hidden: int = 0  # capability announcements edited
    connections: list[ConnectionStats] = field(default_factory=list)
    _plan: _Plan | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def arm(self, after: int, mode: CutMode = "close") -> None:
        """Cut the next accepted connection after ``after`` server->client bytes."""
        self._plan = _Plan(after, mode)

    def disarm(self) -> None:
        self._plan = None

    @property
    def cuts(self) -> int:
        return sum(1 for c in self.connections if c.cut)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # The connections first: since Python 3.12 wait_closed() waits for every open one.
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> CuttingProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        plan, self._plan = self._plan, None  # one-shot
        stats = ConnectionStats()
        self.connections.append(stats)
        try:
            server_r, server_w = await asyncio.open_connection(
                self.target_host, self.target_port, limit=_LINE_LIMIT
            )
        except BaseException as error:  # a refused connection, or the proxy closing
            client_w.close()
            self._tasks.discard(task)
            if isinstance(error, OSError):
                return
            raise
        upstream = asyncio.create_task(self._pump_up(client_r, server_w, stats))
        try:
            if self.hide_capabilities:
                await self._pump_lines(server_r, client_w, stats)
            else:
                await self._pump_down(server_r, client_w, stats, plan)
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upstream
            self._tasks.discard(task)
            await close_writers(server_w, client_w)

    @staticmethod
    async def _pump_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: ConnectionStats
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                stats.to_server += len(data)
                writer.write(data)
                await writer.drain()
            writer.write_eof()

    @staticmethod
    async def _pump_down(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stats: ConnectionStats,
        plan: _Plan | None,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if plan is not None and stats.to_client + len(data) >= plan.after:
                    data = data[: plan.after - stats.to_client]
                    writer.write(data)
                    stats.to_client += len(data)
                    await writer.drain()
                    stats.cut = True
                    if plan.mode == "reset":
                        sock = writer.get_extra_info("socket")
                        if sock is not None:  # linger 0: close() sends RST
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )
                        writer.transport.abort()
                    return
                stats.to_client += len(data)
                writer.write(data)
                await writer.drain()

    async def _pump_lines(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: ConnectionStats
    ) -> None:
        """Line by line, with the hidden capabilities taken out of CAPABILITY lines."""
        hidden = [
            re.compile(rb" " + re.escape(c.encode()) + rb"(?=[ \]\r])", re.I)
            for c in self.hide_capabilities
        ]
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while line := await reader.readuntil(b"\n"):
                if b"CAPABILITY" in line.upper():
                    edited = line
                    for pattern in hidden:
                        edited = pattern.sub(b"", edited)
                    self.hidden += edited != line
                    line = edited
                stats.to_client += len(line)
                writer.write(line)
                await writer.drain()
