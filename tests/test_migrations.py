"""Alembic migrations agree with the models, and go all the way down and back up.

These are plain (sync) tests: Alembic's env.py and the database helpers call
``asyncio.run`` themselves, which must not happen inside a running event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.migrate import alembic_config, check
from tests.support.database import TABLES, migrated_database

Snapshot = dict[str, list[tuple[Any, ...]]]

SNAPSHOT_QUERIES = {
    "tables": """
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' ORDER BY 1
    """,
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default,
               character_maximum_length
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2
    """,
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2
    """,
    "types": """
        SELECT typname FROM pg_type
        WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd') ORDER BY 1
    """,
    "sequences": """
        SELECT sequence_name FROM information_schema.sequences
        WHERE sequence_schema = 'public' ORDER BY 1
    """,
    "revision": "SELECT version_num FROM alembic_version",
}


async def _snapshot_async(url: str) -> Snapshot:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return {
                name: [tuple(row) for row in await connection.execute(text(query))]
                for name, query in SNAPSHOT_QUERIES.items()
            }
    finally:
        await engine.dispose()


def _snapshot(url: str) -> Snapshot:
    return asyncio.run(_snapshot_async(url))


def _head() -> str:
    head = ScriptDirectory.from_config(
        alembic_config("postgresql+asyncpg://unused")
    ).get_current_head()
    assert head is not None
    return head


def test_models_and_migrations_agree(database_url: str) -> None:
    check(database_url)  # raises alembic.util.CommandError on any difference


def test_downgrade_to_base_then_upgrade_to_head(database_server: str) -> None:
    with migrated_database(database_server) as url:
        config = alembic_config(url)
        at_head = _snapshot(url)
        assert at_head["revision"] == [(_head(),)]
        assert {table for (table,) in at_head["tables"]} == {
            *TABLES,
            "alembic_version",
            "instance_secrets",
        }

        command.downgrade(config, "base")
        at_base = _snapshot(url)
        assert at_base["tables"] == [("alembic_version",)], "downgrade left tables behind"
        assert at_base["revision"] == []
        assert at_base["types"] == []
        assert at_base["sequences"] == []
        assert [c for c in at_base["constraints"] if c[0] != "alembic_version"] == []

        command.upgrade(config, "head")
        assert _snapshot(url) == at_head, "upgrade after downgrade built a different schema"
        check(url)


def test_two_migrates_started_at_once_migrate_once(database_server: str) -> None:
    """Two replicas whose start runs `mailsync migrate` at the same moment on an empty
    database: the migration lock makes the second wait and find the schema at head, so both
    succeed (without it the second fails on tables the first is creating)."""
    mailsync = str(Path(sys.executable).with_name("mailsync"))
    with migrated_database(database_server) as url:
        command.downgrade(alembic_config(url), "base")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
        env["MAILSYNC_DATABASE_URL"] = url
        runs = [
            subprocess.Popen(
                [mailsync, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(3)
        ]
        results = [(run.communicate(timeout=120)[1], run.returncode) for run in runs]
        assert [code for _, code in results] == [0, 0, 0], results
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert _snapshot(url)["revision"] == [(head,)]
