"""Passwords never leave the request in readable form: not in any table (as text, base64 or
hex), not in any GraphQL answer, not in any log line the app writes, even at DEBUG for every
logger (aioimaplib included) and for passwords that need IMAP quoting."""

from __future__ import annotations

import base64
import io
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import (  # noqa: F401
    SmtpServer,
    running_smtp_server,
    smtp_server_fixture,
)

NewUser = Callable[..., Awaitable[TestUser]]

# aiosmtpd (the test SMTP server, running in this process) logs what it receives under
# these names; what a test server logs is not the app's doing.
TEST_SERVER_LOGGERS = ("mail.log", "mail.debug")

ACCOUNTS = """
query {
  mailAccounts {
    id emailAddress displayName status lastError
    imap { host port security username }
    smtp { host port security username }
  }
}
"""


def _forms(secret: str, *, smtp_user: str | None = None) -> list[str]:
    """The ways a secret could show up: as is, base64 (also as SMTP AUTH sends it), hex."""
    raw = secret.encode()
    blobs = [raw]
    if smtp_user is not None:
        blobs.append(b"\0" + smtp_user.encode() + b"\0" + raw)  # AUTH PLAIN
    forms = [secret, raw.hex()]
    for blob in blobs:
        forms += [
            base64.b64encode(blob).decode().rstrip("="),
            base64.urlsafe_b64encode(blob).decode().rstrip("="),
        ]
    return forms


def _fragments(secret: str) -> list[str]:
    """Distinctive runs of a secret, to catch it escaped or quoted (e.g. IMAP quoting)."""
    pieces = [p for p in secret.replace('"', " ").replace("\\", " ").split() if len(p) >= 5]
    assert pieces, "use a secret with runs of at least five plain characters"
    return pieces


def _assert_absent(haystack: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in haystack, f"{secret!r} found in {where}"


@contextmanager
def _all_logs_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
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


def _log_text(caplog: pytest.LogCaptureFixture, records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(caplog.handler.format(record))
        lines.append(record.getMessage())
        lines.append(repr(record.args))
    return "\n".join(lines)


async def _database_dump(runtime: Runtime) -> str:
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


async def test_passwords_are_nowhere_after_adding_an_account(
    gql: GraphQLClient,
    new_user: NewUser,
    dovecot: ImapServer,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tag = uuid.uuid4().hex[:10]
    imap_user, imap_password = f"vault-{tag}", f"ImapVault{tag}Secret"
    dovecot.add_user(imap_user, imap_password)
    user = await new_user()
    client = gql.as_user(user.token)
    with running_smtp_server(password=f"SmtpVault{tag}Secret") as smtp:
        input_ = {
            **account_input(dovecot, username=imap_user, password=imap_password),
            "smtp": smtp.smtp_input(),
        }
        with _all_logs_at_debug(caplog) as records:
            response = await client.post(ADD_ACCOUNT, {"input": input_})
            listed = await client.post(ACCOUNTS)
        assert smtp.successful_logins == [smtp.username]

    body = response.json()
    payload = body["data"]["addMailAccount"]
    assert payload["userErrors"] == []
    assert payload["account"]["status"] == "READY"
    assert payload["account"]["smtp"]["username"] == smtp.username
    accounts = listed.json()["data"]["mailAccounts"]
    assert [a["lastError"] for a in accounts] == [None]

    secrets = _forms(imap_password) + _forms(smtp.password, smtp_user=smtp.username)
    _assert_absent(response.text, secrets, "the addMailAccount response")
    _assert_absent(listed.text, secrets, "the mailAccounts response")
    assert "password" not in response.text.lower()
    assert "password" not in listed.text.lower()
    assert records, "no log records were captured at all"
    _assert_absent(_log_text(caplog, records), secrets, "the logs")
    dump = await _database_dump(runtime)
    assert imap_user in dump  # the dump does hold the account...
    _assert_absent(dump, secrets, "the database")  # ...but not its passwords


QUOTED_PASSWORD = 'Kq7Zp"Vw3Xt\\Rm9Yb'  # needs IMAP quoting: aioimaplib's scrubbing misses it


async def test_failed_login_with_a_quoted_password_logs_no_password(
    gql: GraphQLClient,
    new_user: NewUser,
    imap_server: ImapServer,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    with _all_logs_at_debug(caplog) as records:
        response = await client.post(
            ADD_ACCOUNT, {"input": account_input(imap_server, password=QUOTED_PASSWORD)}
        )
    payload = response.json()["data"]["addMailAccount"]
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "imap.password")

    secrets = _forms(QUOTED_PASSWORD) + _fragments(QUOTED_PASSWORD)
    _assert_absent(response.text, secrets, "the response")
    assert records, "no log records were captured at all"
    _assert_absent(_log_text(caplog, records), secrets, "the logs")
    _assert_absent(await _database_dump(runtime), secrets, "the database")


async def test_failed_smtp_login_with_a_quoted_password_logs_no_password(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    input_ = {
        **account_input(pymap),
        "smtp": smtp_server.smtp_input(password=QUOTED_PASSWORD),
    }
    with _all_logs_at_debug(caplog) as records:
        response = await client.post(ADD_ACCOUNT, {"input": input_})
    payload = response.json()["data"]["addMailAccount"]
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "smtp.password")

    secrets = (
        _forms(QUOTED_PASSWORD, smtp_user=smtp_server.username)
        + _fragments(QUOTED_PASSWORD)
        + _forms(pymap.password)
    )
    _assert_absent(response.text, secrets, "the response")
    _assert_absent(_log_text(caplog, records), secrets, "the logs")
    _assert_absent(await _database_dump(runtime), secrets, "the database")
