"""One account's sync run as a whole: which folders it takes, its schedule afterwards."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.accounts import credentials
from core.db import session_scope
from core.models import AccountStatus, Folder, MailAccount, Message
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from core.sync.run import sync_account
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import QuirksProxy
from tests.support.mailservers import ImapServer
from tests.support.silent_server import silent_tcp_server
from tests.support.sync import (
    EVERY_RUN,
    connect_and_start,
    private_mailbox,
    seen_through,
    sync_once,
)
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]


async def subjects_by_folder(runtime: Runtime, account_id: uuid.UUID) -> dict[str, list[str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Folder.name, Message.subject)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id)
            .order_by(Message.subject)
        )
        found: dict[str, list[str]] = {}
        for name, subject in rows:
            found.setdefault(name, []).append(subject)
    return found


async def next_sync_at(runtime: Runtime, account_id: uuid.UUID) -> datetime | None:
    async with runtime.session_factory() as session:
        return await session.scalar(
            select(MailAccount.next_sync_at).where(MailAccount.id == account_id)
        )


async def test_a_run_of_one_folder_syncs_only_it_and_leaves_the_schedule(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """What an IDLE watcher asks for: INBOX now, the rest at the account's next full run."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id = await connect_and_start(
            gql.as_user(owner.token), box, labels=["INBOX", "Sent"]
        )
        await sync_once(runtime, account_id)
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message("pushed"), now)])
        await box.admin.append_many("Sent", [(make_message("later"), now)])
        scheduled = await next_sync_at(runtime, account_id)

        result = await sync_account(runtime, account_id, EVERY_RUN, folders=["INBOX"])
        assert result is not None and result.counts.new == 1 and not result.initial
        assert await subjects_by_folder(runtime, account_id) == {"INBOX": ["pushed"]}
        assert await next_sync_at(runtime, account_id) == scheduled

        await sync_once(runtime, account_id)
        assert await subjects_by_folder(runtime, account_id) == {
            "INBOX": ["pushed"],
            "Sent": ["later"],
        }


async def test_a_server_that_never_greets_fails_the_run_soon_and_says_so(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """It accepts the TCP connection and stays silent: the run gives up after the short
    greeting timeout, not the whole mail timeout, and lastError says what happened."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        silent_tcp_server() as (port, connections),
        open_runtime(
            make_settings(mail_timeout_seconds=10, mail_greeting_timeout_seconds=1)
        ) as worker,
    ):
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(MailAccount).where(MailAccount.id == account_id).values(imap_port=port)
            )
        started = time.monotonic()
        assert await sync_account(worker, account_id, EVERY_RUN) is None
        elapsed = time.monotonic() - started
    assert connections, "the run never reached the silent server"
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
    assert account is not None and account.status is AccountStatus.ERROR
    assert account.last_error == (
        f"127.0.0.1:{port} accepted the connection but sent no IMAP greeting within 1 s."
    )
    assert elapsed < 5, f"the run took {elapsed:.1f} s"


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "core.sync.run" and r.levelno >= logging.WARNING]


async def test_each_failed_run_logs_one_line_with_its_account_folder_and_code(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """lastError is for the user; operators get one structured line per failed run (no
    secret in it): the account, the folder it failed in, a code, the message."""
    caplog.set_level(logging.INFO)
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        QuirksProxy(box.server.host, box.server.port) as proxy,
    ):
        seen = seen_through(box, proxy)
        await box.admin.create("Projects")
        account_id = await connect_and_start(
            gql.as_user(owner.token), seen, labels=["INBOX", "Projects"]
        )
        await sync_once(runtime, account_id)

        # The server refuses to open one folder.
        await box.admin.append_many("Projects", [(make_message("refused"), datetime.now(UTC))])
        proxy.refuse("SELECT", "Projects")
        caplog.clear()
        assert await sync_account(runtime, account_id, EVERY_RUN) is None
        [line] = failure_lines(caplog)
        assert line.__dict__["account_id"] == str(account_id)
        assert line.__dict__["folder"] == "Projects"
        assert line.__dict__["error_code"] == "IMAP_COMMAND_REFUSED"
        assert "folder='Projects' code=IMAP_COMMAND_REFUSED" in line.getMessage()
        assert line.__dict__["error_message"] == await last_error(runtime, account_id)

        # The stored password no longer works: refused at login, before any folder.
        wrong = "a-secret-that-changed"
        sealed = credentials.seal(runtime.key_ring, account_id, credentials.IMAP, wrong)
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(MailAccount)
                .where(MailAccount.id == account_id)
                .values(imap_password_encrypted=sealed)
            )
        caplog.clear()
        assert await sync_account(runtime, account_id, EVERY_RUN) is None
        [line] = failure_lines(caplog)
        assert (line.__dict__["folder"], line.__dict__["error_code"]) == (
            None,
            "INVALID_CREDENTIALS",
        )
        assert f"account={account_id} folder=- code=INVALID_CREDENTIALS" in line.getMessage()
        assert wrong not in caplog.text and box.password not in caplog.text


async def last_error(runtime: Runtime, account_id: uuid.UUID) -> str | None:
    async with runtime.session_factory() as session:
        return await session.scalar(
            select(MailAccount.last_error).where(MailAccount.id == account_id)
        )
