"""The database engine, sessions, and the after-commit hook.

One ``AsyncSession`` per request; a job (a sync run, a delivery) opens one short session
per step instead, so that it holds no connection or lock while it talks to a mail server.
:func:`session_scope` commits at the end and rolls back on error. Services only flush.
Work that must happen only once the data is durable (enqueueing jobs, publishing events)
is registered with :func:`after_commit`.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ClauseElement, event, func, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.compiler import SQLCompiler

from core import metrics

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


# A connection back in the pool for longer than this is pinged before it is handed out
# again; one used a moment ago is not (SQLAlchemy's pool_pre_ping pings on every checkout:
# about five round trips per sync run for nothing). A server restart shows on a connection
# that was idle; one that breaks within this window fails its statement, and SQLAlchemy
# then invalidates the whole pool.
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "mailsync.checked_in_at"


@functools.cache  # per statement (each built once and cached itself) and dialect
def _driver_sql(
    statement: ClauseElement, dialect: Dialect
) -> tuple[str, tuple[str, ...], dict[str, object]]:
    """The SQL, its parameters' names in order, and the values of literal ones."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)  # a statement's, not DDL's
    fixed = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return compiled.string, tuple(compiled.positiontup or ()), fixed


async def fetch_compiled(
    session: AsyncSession | AsyncConnection, statement: ClauseElement, values: dict[str, object]
) -> Sequence[Any]:
    """Rows of a statement built once (``functools.cache``) and compiled once, sent as the
    driver's SQL: no statement construction, cache-key walk or per-column result
    processing per request, for the hottest reads (the inbox page, the token lookup).
    What comes back is the driver's: uuids, datetimes and strings, not enum members nor
    JSON decoded by column types. The statements still pass SQLAlchemy's cursor events,
    which the statement-count tests count."""
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    sql, names, fixed = _driver_sql(statement, connection.dialect)
    values = {**fixed, **values} if fixed else values
    result = await connection.exec_driver_sql(sql, tuple(values[name] for name in names))
    return result.all()


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (same pool) with connections in AUTOCOMMIT: for reads, and for a single
    statement that is atomic on its own. PostgreSQL's READ COMMITTED gives each statement
    its own snapshot inside a transaction too, so a read sees exactly what it would in
    one; what goes is the BEGIN and the ROLLBACK, two round trips."""
    found = _AUTOCOMMIT.get(engine)
    if found is None:
        found = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


def application_name(role: str) -> str:
    """What ``pg_stat_activity`` shows for this process's connections: the role and pid,
    so that backends can be counted per process (README, "Connection sizing")."""
    return f"mailsync {role} {os.getpid()}"


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 0,
    pool_timeout: float = 30.0,
    role: str = "tool",
) -> AsyncEngine:
    """``pool_size + max_overflow`` is the most connections this process opens. Overflow
    connections are closed on return: a steady overflow means the pool is too small."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        # The connection returned last is handed out first: a quiet process keeps reusing
        # one warm connection (no ping), and the rest sit until they are needed, instead of
        # every checkout taking the one idle longest (and pinging it, past 5 s).
        pool_use_lifo=True,
        connect_args={
            "server_settings": SERVER_SETTINGS | {"application_name": application_name(role)}
        },
    )
    _ping_connections_that_were_idle(engine)
    return engine


def _ping_connections_that_were_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used a moment ago
        metrics.POOL_PINGS.inc()
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the connection is broken, whatever the driver raised
            raise DisconnectionError("connection lost while idle in the pool") from exc
        if not alive:
            raise DisconnectionError("connection lost while idle in the pool")


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
    and with it the lock, so nothing stays locked after a crash. It costs a connection for
    as long as it is held: work that waits on the network claims a row instead
    (core/claims.py)."""
    lock_id = key.int & 0x7FFF_FFFF_FFFF_FFFF  # the bigint lock space
    async with engine.connect() as connection:
        if wait_seconds is None:
            acquired = bool(await connection.scalar(select(func.pg_try_advisory_lock(lock_id))))
        else:
            acquired = await _wait_for_advisory_lock(connection, lock_id, wait_seconds)
        await connection.commit()
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            await connection.rollback()
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
