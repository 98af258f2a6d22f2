"""Looking for secrets where none may be: every log record at DEBUG, a dump of every table,
every key and value in Redis. Used by the password and the OAuth2 token tests."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from core.runtime import Runtime

# aiosmtpd (the test SMTP server, running in this process) logs what it receives under
# these names; what a test server logs is not the app's doing.
TEST_SERVER_LOGGERS = ("mail.log", "mail.debug")


def secret_forms(
    secret: str, *, smtp_user: str | None = None, xoauth2_user: str | None = None
) -> list[str]:
    """The ways a secret could show up: as is, base64 (also as SMTP AUTH PLAIN and XOAUTH2
    send it), hex."""
    raw = secret.encode()
    blobs = [raw]
    if smtp_user is not None:
        blobs.append(b"\0" + smtp_user.encode() + b"\0" + raw)  # AUTH PLAIN
    if xoauth2_user is not None:
        blobs.append(b"user=" + xoauth2_user.encode() + b"\1auth=Bearer " + raw + b"\1\1")
    forms = [secret, raw.hex()]
    for blob in blobs:
        forms += [
            base64.b64encode(blob).decode().rstrip("="),
            base64.urlsafe_b64encode(blob).decode().rstrip("="),
        ]
    return forms


def secret_fragments(secret: str) -> list[str]:
    """Distinctive runs of a secret, to catch it escaped or quoted (e.g. IMAP quoting)."""
    pieces = [p for p in secret.replace('"', " ").replace("\\", " ").split() if len(p) >= 5]
    assert pieces, "use a secret with runs of at least five plain characters"
    return pieces


def assert_absent(haystack: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in haystack, f"{secret!r} found in {where}"


@contextmanager
def all_logs_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Every logger at DEBUG (aioimaplib too), every record captured; yields the records
    written by the app's process, i.e. without the test SMTP server's own."""
    caplog.set_level(logging.DEBUG)
    names = {"aioimaplib", "aioimaplib.aioimaplib", "aiosmtplib", "sqlalchemy", "asyncio"}
    names |= set(logging.root.manager.loggerDict)
    silent: list[logging.Logger] = []
    for name in sorted(names):
        caplog.set_level(logging.DEBUG, logger=name)
        logger = logging.getLogger(name)
        if not logger.propagate:  # e.g. uvicorn's: attach the capture handler directly
            logger.addHandler(caplog.handler)
            silent.append(logger)
    records: list[logging.LogRecord] = []
    start = len(caplog.records)
    try:
        yield records
    finally:
        for logger in silent:
            logger.removeHandler(caplog.handler)
        records += [r for r in caplog.records[start:] if not r.name.startswith(TEST_SERVER_LOGGERS)]


def log_text(caplog: pytest.LogCaptureFixture, records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(caplog.handler.format(record))
        lines.append(record.getMessage())
        lines.append(repr(record.args))
    return "\n".join(lines)


async def database_dump(runtime: Runtime) -> str:
    """Every row of every table, as `pg_dump` writes data (COPY ... TO STDOUT), plus each
    mail_accounts row as text and each of its bytea columns decoded as text."""
    chunks: list[str] = []
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(text("SELECT t::text FROM mail_accounts t"))
        chunks += [row[0] for row in rows]
        columns = await connection.execute(
            text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = 'mail_accounts'"
            )
        )
        for name, data_type in columns.all():
            expressions = [f'"{name}"::text']
            if data_type == "bytea":
                expressions += [f"encode(\"{name}\", 'escape')", f"encode(\"{name}\", 'base64')"]
            for expression in expressions:
                values = await connection.execute(
                    text(f"SELECT {expression} FROM mail_accounts")  # noqa: S608 (catalog names)
                )
                chunks += [str(v[0]) for v in values]
        tables = await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        for (table,) in tables.all():
            buffer = io.BytesIO()
            await driver.copy_from_table(table, output=buffer, format="text")
            chunks.append(buffer.getvalue().decode("utf-8", "replace"))
    return "\n".join(chunks)


async def redis_dump(runtime: Runtime) -> str:
    """Every key of the Redis database with its value, whatever its type (arq's jobs and
    results are pickled strings; rate-limit windows sorted sets)."""
    redis = runtime.redis
    chunks: list[str] = []
    async for key in redis.scan_iter(count=500):
        kind = (await redis.type(key)).decode()
        values: list[Any]
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            values = [v for pair in (await redis.hgetall(key)).items() for v in pair]
        elif kind == "list":
            values = list(await redis.lrange(key, 0, -1))
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            values = list(await redis.zrange(key, 0, -1))
        else:
            values = [await redis.dump(key)]
        chunks.append(key.decode("utf-8", "replace"))
        chunks += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return "\n".join(chunks)
