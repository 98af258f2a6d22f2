"""The database engine, sessions, and the after-commit hook.

One ``AsyncSession`` per request; a job (a sync run, a delivery) opens one short session
per step instead, so that it holds no connection or lock while it talks to a mail server.
:func:`session_scope` commits at the end and rolls back on error. Services only flush.
Work that must happen only once the data is durable (enqueueing jobs, publishing events)
is registered with :func:`after_commit`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

SessionFactory = async_sessionmaker[AsyncSession]
AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "mailsync.after_commit"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout that ran out


# Every connection of the app. asyncpg prepares every statement, and after five runs
# PostgreSQL's default (plan_cache_mode=auto) may switch a statement to a generic plan that
# ignores its parameters: for the inbox that turned a common-word search from 15 ms into
# 3.5 s (bench/README.md). Planning each execution costs well under a millisecond.
SERVER_SETTINGS = {"application_name": "mailsync", "plan_cache_mode": "force_custom_plan"}


def create_engine(
    database_url: str, *, pool_size: int = 10, pool_timeout: float = 30.0
) -> AsyncEngine:
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"server_settings": SERVER_SETTINGS},
    )


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once ``session_scope`` has committed; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            session.info.pop(_AFTER_COMMIT, None)
            raise
        callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # the data is committed; a lost notification must not fail it
            log.exception("after-commit callback failed")


@asynccontextmanager
async def advisory_lock(
    engine: AsyncEngine, key: uuid.UUID, *, wait_seconds: float | None = None
) -> AsyncIterator[bool]:
    """A session-level PostgreSQL advisory lock on ``key``, held on its own connection
    for the whole block (yields whether it was acquired). Without ``wait_seconds`` it is
    only tried; with it, waited for that long. A process that dies drops its connection,
    and with it the lock, so nothing stays locked after a crash."""
    lock_id = key.int & 0x7FFF_FFFF_FFFF_FFFF  # the bigint lock space
    async with engine.connect() as connection:
        if wait_seconds is None:
            acquired = bool(await connection.scalar(select(func.pg_try_advisory_lock(lock_id))))
        else:
            acquired = await _wait_for_advisory_lock(connection, lock_id, wait_seconds)
        await connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                await connection.scalar(select(func.pg_advisory_unlock(lock_id)))
                await connection.commit()


async def _wait_for_advisory_lock(
    connection: AsyncConnection, lock_id: int, seconds: float
) -> bool:
    milliseconds = max(int(seconds * 1000), 1)
    # Transaction-local: the pooled connection keeps its default lock_timeout afterwards.
    await connection.execute(select(func.set_config("lock_timeout", f"{milliseconds}ms", True)))
    try:
        await connection.execute(select(func.pg_advisory_lock(lock_id)))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        await connection.rollback()
        return False
    return True
