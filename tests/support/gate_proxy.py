"""A loopback TCP proxy with a gate: while it is closed, nothing from the server reaches the
client (the client waits, as on a stalled link); opening it lets everything through. A
test holds a job mid-run with it, for exactly as long as it needs. ``close_after(pattern)``
closes the gate by itself once the client has sent ``pattern`` (e.g. the end of an SMTP
DATA body: the server takes the message, its reply never arrives)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_CHUNK = 64 * 1024


@dataclass
class GateProxy:
    target_host: str
    target_port: int
    host: str = "127.0.0.1"
    port: int = 0
    accepted: int = 0
    _close_after: bytes | None = None
    _open: asyncio.Event = field(default_factory=asyncio.Event)
    _accepting: asyncio.Event = field(default_factory=asyncio.Event)  # set on each accept
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def open(self) -> None:
        self._open.set()

    def close_gate(self) -> None:
        self._open.clear()

    def close_after(self, pattern: bytes) -> None:
        self._close_after = pattern

    async def wait_for_connections(self, count: int, seconds: float) -> None:
        """Until ``count`` connections have been accepted in all (a job connected)."""
        async with asyncio.timeout(seconds):
            while self.accepted < count:
                self._accepting.clear()
                await self._accepting.wait()

    async def __aenter__(self) -> GateProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._accepting.set()
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except BaseException as error:  # a refused connection, or the proxy closing
            client_w.close()
            if isinstance(error, OSError):
                return
            raise
        up = asyncio.create_task(self._pump(client_r, server_w, gated=False))
        down = asyncio.create_task(self._pump(server_r, client_w, gated=True))
        self._tasks.update((up, down))
        for task in (up, down):
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if gated:
                    await self._open.wait()
                elif (pattern := self._close_after) is not None:
                    if pattern in tail + data:  # before the server can answer it
                        self._close_after = None
                        self._open.clear()
                    tail = (tail + data)[-len(pattern) :]
                writer.write(data)
                await writer.drain()
