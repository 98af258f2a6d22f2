"""Parsing fetched messages off the event loop, in worker processes.

Parsing is CPU-bound (about half of a first sync) and holds the GIL, so threads would not
help: a small process pool parses one chunk while the event loop fetches the next and
writes the previous. Without a pool (tests, the API) messages are parsed inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor

from core.mail import fingerprint
from core.mail.parsing import ParsedMessage, parse_message


def _init_pool_process() -> None:
    """Linux: end this pool process when the worker dies, even by SIGKILL (no orphans).
    Ctrl-C reaches the whole process group: stopping is the worker's job (it shuts the pool
    down), so this process ignores SIGINT instead of printing a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def parse_many(raws: list[bytes]) -> list[ParsedMessage]:
    return [parse_message(raw) for raw in raws]


def parse_for_rows(messages: list[tuple[bytes, int]]) -> list[tuple[ParsedMessage, str]]:
    """Each (raw, RFC822.SIZE) parsed, with its content fingerprint: both read the raw
    bytes, so the pool does both and the worker's event loop neither."""
    return [(parse_message(raw), fingerprint.of_message(raw, size)) for raw, size in messages]


class MessageParser:
    def __init__(self, processes: int = 0) -> None:
        self._executor = (
            ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_pool_process,
            )
            if processes > 0
            else None
        )
        if self._executor is not None:
            # Start the pool now: a spawned process imports the parser (seconds on a busy
            # machine), which would otherwise delay the first new mail of whichever account
            # parses first after the worker starts.
            self._executor.submit(parse_many, [])

    async def parse(self, raws: list[bytes]) -> list[ParsedMessage]:
        if self._executor is None:
            return parse_many(raws)
        return await asyncio.get_running_loop().run_in_executor(self._executor, parse_many, raws)

    async def parse_for_rows(
        self, messages: list[tuple[bytes, int]]
    ) -> list[tuple[ParsedMessage, str]]:
        """:func:`parse_for_rows` in the pool (inline without one)."""
        if self._executor is None:
            return parse_for_rows(messages)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, parse_for_rows, messages
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


INLINE = MessageParser(0)
