"""A fresh, migrated database per test session on the configured or embedded server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from cli.embedded import embedded_postgres, embedded_redis
from core.migrate import upgrade

EMBEDDED_DIR = Path(__file__).resolve().parents[2] / ".mailsync" / "test"

TABLES = [
    "companies",
    "users",
    "api_tokens",
    "mail_accounts",
    "folders",
    "folder_changes",
    "messages",
    "thread_keys",
    "outgoing_messages",
    "oauth_grants",
    "watcher_leases",
    "pending_moves",
]


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """MAILSYNC_TEST_DATABASE_URL, else an embedded PostgreSQL under .mailsync/test/."""
    configured = os.environ.get("MAILSYNC_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with embedded_postgres(EMBEDDED_DIR / "postgres") as url:
        yield url


@contextlib.contextmanager
def migrated_database(server: str) -> Iterator[str]:
    """A new database on ``server``, migrated to head; dropped afterwards."""
    name = f"mailsync_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """MAILSYNC_TEST_REDIS_URL (its database is flushed by tests!), else an embedded Redis."""
    configured = os.environ.get("MAILSYNC_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with embedded_redis(EMBEDDED_DIR / "redis.db") as url:
        yield url
