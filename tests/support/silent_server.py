"""A loopback TCP server that accepts connections and never says a word (a tarpit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

LOOPBACK = "127.0.0.1"


@asynccontextmanager
async def silent_tcp_server(greeting: bytes = b"") -> AsyncIterator[tuple[int, list[int]]]:
    """Yields (port, connections); ``connections`` gains one entry per accepted one.
    With ``greeting``, that is sent first, and then nothing more."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.write(greeting)
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()
        await server.wait_closed()
