"""The per-account advisory lock: one sync of an account at a time, across all workers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from core.runtime import Runtime


def _lock_key(account_id: uuid.UUID) -> int:
    return account_id.int & 0x7FFF_FFFF_FFFF_FFFF


@asynccontextmanager
async def account_lock(runtime: Runtime, account_id: uuid.UUID) -> AsyncIterator[bool]:
    """A session-level advisory lock held on its own connection for the whole run."""
    async with runtime.engine.connect() as connection:
        key = _lock_key(account_id)
        acquired = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
        await connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                await connection.scalar(select(func.pg_advisory_unlock(key)))
                await connection.commit()
