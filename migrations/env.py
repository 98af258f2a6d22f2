"""Alembic environment: async engine, URL from the Alembic config or MAILSYNC_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
import uuid

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import advisory_lock
from core.models import Base

# Two replicas starting at once (`mailsync migrate` in each): the second waits for the
# first's lock, then finds the schema at head and does nothing.
MIGRATION_LOCK = uuid.uuid5(uuid.NAMESPACE_URL, "mailsync:migrations")
MIGRATION_LOCK_WAIT_SECONDS = 600.0

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("MAILSYNC_DATABASE_URL")
    if not url:
        raise SystemExit("invalid configuration: MAILSYNC_DATABASE_URL is not set")
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    try:
        async with advisory_lock(
            engine, MIGRATION_LOCK, wait_seconds=MIGRATION_LOCK_WAIT_SECONDS
        ) as acquired:
            if not acquired:
                raise SystemExit(
                    "another `mailsync migrate` has held the migration lock for 10 min"
                )
            async with engine.connect() as connection:
                await connection.run_sync(_run)
                await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
