"""Runs pymap (``python -P pymap_launcher.py <pymap arguments>``) with two workarounds.

1. Connections that go silent on Python 3.13: pymap keeps no reference to the task that
   serves a connection, and on 3.13 (0.36.7, seen with 5 connections at once) such a task
   was garbage-collected while it waited for the client's first command ("Task was
   destroyed but it is pending!" in pymap's log): the client never got an answer, timed
   out, and addMailAccount answered SERVER_UNREACHABLE. Here every connection's task is
   held until it ends.
2. Slow logins: without passlib, pymap hashes and checks passwords with pysasl's
   BuiltinHash, 500,000 rounds of PBKDF2-SHA256 per login on a thread pool of
   ``os.cpu_count() - 1`` workers (one, on 2 cores): parallel logins queue, 0.7-3 s each
   on a loaded machine, past the 5 s mail timeout. A test server needs no brute-force
   resistance: 1,000 rounds here.

tests/sync/test_mailbox_ops.py fails, naming pymap and pysasl, when either no longer fits.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pysasl.hashing import BuiltinHash

TEST_ROUNDS = 1_000
_SERVING: set[asyncio.Task[Any]] = set()


def use_cheap_hash() -> None:
    defaults = BuiltinHash.__init__.__kwdefaults__
    if defaults is None or "rounds" not in defaults:
        raise RuntimeError("pysasl's BuiltinHash no longer takes rounds=: see pymap_launcher.py")
    defaults["rounds"] = TEST_ROUNDS


def hold_connection_tasks() -> None:
    from pymap.imap import IMAPServer

    serve = IMAPServer.__call__

    async def held(self: IMAPServer, *args: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        _SERVING.add(task)
        try:
            await serve(self, *args)
        finally:
            _SERVING.discard(task)

    IMAPServer.__call__ = held  # type: ignore[method-assign]


if __name__ == "__main__":
    use_cheap_hash()
    hold_connection_tasks()
    from pymap.main import main

    sys.exit(main())
