"""Closing the test servers' and proxies' stream pairs without leaking a socket."""

from __future__ import annotations

import asyncio
import contextlib


async def close_writers(*writers: asyncio.StreamWriter) -> None:
    """Close every writer before waiting on any: a proxy's task is cancelled by its
    ``__aexit__`` at any await, and a cancel that landed while the first writer was
    being waited on used to leave the second open (an unclosed-socket ResourceWarning,
    raised later in whichever test the garbage collector happened to run in)."""
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
