"""Enqueueing background jobs (arq over Redis). Outside ``workers/``, only this module and
``core/runtime.py`` (which opens the pool) use arq.

Job ids make enqueueing idempotent: while ``sync:{account}`` is queued or running, another
enqueue of it is a no-op. Call these only after the transaction that made the work due has
committed (see ``core.db.after_commit``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import after_commit

SYNC_ACCOUNT = "sync_account"
SEND_OUTGOING = "send_outgoing"


def sync_job_id(account_id: uuid.UUID) -> str:
    return f"sync:{account_id}"


def send_job_id(outgoing_id: uuid.UUID) -> str:
    return f"send:{outgoing_id}"


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def enqueue_sync(
        self, account_id: uuid.UUID, folders: Sequence[str] | None = None
    ) -> bool:
        """True when queued now, False when that account's sync is already queued/running.
        ``folders``: a run of only these selected folders (what an IDLE watcher heard of)."""
        if folders is None:
            job = await self._redis.enqueue_job(
                SYNC_ACCOUNT, str(account_id), _job_id=sync_job_id(account_id)
            )
        else:
            job = await self._redis.enqueue_job(
                SYNC_ACCOUNT, str(account_id), list(folders), _job_id=sync_job_id(account_id)
            )
        return job is not None

    async def enqueue_send(self, outgoing_id: uuid.UUID) -> bool:
        """Deliver an outgoing message; False when its delivery is already queued/running."""
        job = await self._redis.enqueue_job(
            SEND_OUTGOING, str(outgoing_id), _job_id=send_job_id(outgoing_id)
        )
        return job is not None


def enqueue_sync_after_commit(session: AsyncSession, jobs: JobQueue, account_id: uuid.UUID) -> None:
    """Queue the account's sync once ``session``'s transaction has committed."""

    async def enqueue() -> None:
        await jobs.enqueue_sync(account_id)

    after_commit(session, enqueue)
