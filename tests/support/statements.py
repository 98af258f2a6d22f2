"""Counting the SQL statements the app sends while a block runs (the N+1 guard)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# The app's own periodic work on the same engine, not part of any request: the metrics
# gauges' refresh (api/metrics.py) runs three counts every few seconds, and landed inside
# a measured request now and then on a busy machine.
BACKGROUND_TASKS = frozenset({"mailsync-metrics-gauges"})


def _in_background() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: a synchronous caller
        return False
    return task is not None and task.get_name() in BACKGROUND_TASKS


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement executed on ``engine`` (the app's, in-process) inside the block,
    except those of the app's background tasks (BACKGROUND_TASKS)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not _in_background():
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
