"""The per-account advisory lock: one sync of an account at a time, across all workers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.db import advisory_lock
from core.runtime import Runtime


@asynccontextmanager
async def account_lock(runtime: Runtime, account_id: uuid.UUID) -> AsyncIterator[bool]:
    """Held on its own connection for the whole run; yields whether it was acquired."""
    async with advisory_lock(runtime.engine, account_id) as acquired:
        yield acquired
