"""updateMailAccount with new servers: IMAP moved, SMTP added, replaced or removed. Every new
login is proven before anything is stored; a refused one changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.accounts import credentials
from core.mail.server import ServerLogin
from core.models import AccountStatus, Folder, MailAccount, Message, Plan, SendStatus
from core.runtime import Runtime
from core.settings import Settings
from tests.sending.helpers import outgoing_row, run_worker, send
from tests.support.accounts import add_account
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import (  # noqa: F401
    SmtpServer,
    running_smtp_server,
    smtp_server_fixture,
)
from tests.support.sync import private_mailbox, start_and_sync, sync_once

NewUser = Callable[..., Awaitable[TestUser]]

UPDATE = """
mutation Update($input: UpdateMailAccountInput!) {
  updateMailAccount(input: $input) {
    account {
      id status lastError
      imap { host port security username }
      smtp { host port security username }
      folders { name role }
    }
    userErrors { code field message }
  }
}
"""


async def _update(client: GraphQLClient, account_id: str, **fields: Any) -> dict[str, Any]:
    data = await client.execute(UPDATE, {"input": {"accountId": account_id, **fields}})
    payload: dict[str, Any] = data["updateMailAccount"]
    return payload


async def _row(runtime: Runtime, account_id: str) -> MailAccount:
    async with runtime.session_factory() as session:
        row = await session.get(MailAccount, uuid.UUID(account_id))
    assert row is not None
    return row


def _columns(row: MailAccount) -> tuple[object, ...]:
    return (
        row.status,
        row.imap_host,
        row.imap_port,
        row.imap_username,
        row.imap_password_encrypted,
        row.smtp_host,
        row.smtp_port,
        row.smtp_username,
        row.smtp_password_encrypted,
    )


async def test_moving_imap_to_another_server_syncs_the_new_mailbox(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    dovecot: ImapServer,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    """An account synced from pymap moves to a Dovecot mailbox: the new login is stored
    (sealed), the folders are Dovecot's, an AUTH_FAILED account resumes, and the next sync
    shows the new mailbox's mail instead of the old one's."""
    client = gql.as_user((await new_user()).token)
    account = await add_account(client, pymap)
    account_id = account["id"]
    await start_and_sync(client, runtime, account_id)
    async with runtime.session_factory() as session:
        old_subjects = set(await session.scalars(select(Message.subject)))
    assert old_subjects
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(MailAccount)
            .where(MailAccount.id == uuid.UUID(account_id))
            .values(status=AccountStatus.AUTH_FAILED, last_error="The server refused the login.")
        )

    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append("INBOX", b"Subject: On the new server\r\n\r\nHello.\r\n")
        payload = await _update(client, account_id, imap=box.imap_input())
        assert payload["userErrors"] == []
        changed = payload["account"]
        assert changed["imap"] == {
            "host": dovecot.host,
            "port": dovecot.port,
            "security": "NONE",
            "username": box.username,
        }
        assert {f["name"] for f in changed["folders"]} >= {"INBOX", "Sent", "Drafts", "Junk"}
        assert (changed["status"], changed["lastError"]) == ("ACTIVE", None)
        row = await _row(runtime, account_id)
        stored = credentials.imap_login(runtime.key_ring, row)
        assert stored == ServerLogin(
            dovecot.host, dovecot.port, row.imap_security, box.username, box.password
        )

        await sync_once(runtime, uuid.UUID(account_id))
    async with runtime.session_factory() as session:
        subjects = set(await session.scalars(select(Message.subject)))
    assert subjects == {"On the new server"}


async def test_a_refused_imap_login_changes_nothing(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    dovecot: ImapServer,
    runtime: Runtime,
) -> None:
    client = gql.as_user((await new_user()).token)
    account_id = (await add_account(client, pymap))["id"]
    before = await _row(runtime, account_id)
    async with runtime.session_factory() as session:
        folders_before = set(
            await session.scalars(
                select(Folder.name).where(Folder.account_id == uuid.UUID(account_id))
            )
        )

    wrong = {
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "NONE",
        "username": dovecot.username,
        "password": "not-the-password",
    }
    payload = await _update(client, account_id, imap=wrong, displayName="Renamed")
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "imap.password")
    assert "not-the-password" not in error["message"]
    after = await _row(runtime, account_id)
    assert _columns(after) == _columns(before)
    assert after.display_name is None  # the whole mutation changed nothing
    async with runtime.session_factory() as session:
        folders_after = set(
            await session.scalars(
                select(Folder.name).where(Folder.account_id == uuid.UUID(account_id))
            )
        )
    assert folders_after == folders_before


async def test_smtp_added_to_an_account_is_proven_and_then_sends(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
    make_settings: Callable[..., Settings],
) -> None:
    client = gql.as_user((await new_user()).token)
    account_id = (await add_account(client, pymap))["id"]
    refused = await send(client, fromAccountId=account_id)
    assert [e["code"] for e in refused["userErrors"]] == ["ACCOUNT_NOT_SENDABLE"]

    payload = await _update(client, account_id, smtp=smtp_server.smtp_input())
    assert payload["userErrors"] == []
    assert payload["account"]["smtp"]["username"] == smtp_server.username
    assert smtp_server.successful_logins == [smtp_server.username]

    sent = await send(client, fromAccountId=account_id, subject="Now it sends")
    assert sent["userErrors"] == []
    await run_worker(make_settings)
    row = await outgoing_row(runtime, sent["outgoing"]["id"])
    assert row.status is SendStatus.SENT
    assert len(smtp_server.received) == 1


async def test_a_refused_smtp_replacement_keeps_the_old_smtp(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    client = gql.as_user((await new_user()).token)
    account = await add_account(client, pymap, smtp=smtp_server.smtp_input())
    before = await _row(runtime, account["id"])
    with running_smtp_server() as other:
        payload = await _update(
            client, account["id"], smtp=other.smtp_input(password="wrong-password")
        )
        assert other.attempts, "the new server was never asked"
        assert not any(a.success for a in other.attempts)
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "smtp.password")
    assert _columns(await _row(runtime, account["id"])) == _columns(before)


async def test_smtp_replaced_by_a_relay_then_removed(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    client = gql.as_user((await new_user()).token)
    account = await add_account(client, pymap, smtp=smtp_server.smtp_input())
    relay = {"host": smtp_server.host, "port": smtp_server.port, "security": "NONE"}
    payload = await _update(client, account["id"], smtp=relay)
    assert payload["userErrors"] == []
    assert payload["account"]["smtp"]["username"] == ""
    row = await _row(runtime, account["id"])
    assert (row.smtp_username, row.smtp_password_encrypted) == (None, None)

    payload = await _update(client, account["id"], removeSmtp=True)
    assert payload["userErrors"] == []
    assert payload["account"]["smtp"] is None
    row = await _row(runtime, account["id"])
    assert (row.smtp_host, row.smtp_port, row.smtp_security) == (None, None, None)
    refused = await send(client, fromAccountId=account["id"])
    assert [e["code"] for e in refused["userErrors"]] == ["ACCOUNT_NOT_SENDABLE"]


async def test_smtp_and_remove_smtp_together_is_invalid_input(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp_server: SmtpServer
) -> None:
    client = gql.as_user((await new_user()).token)
    account_id = (await add_account(client, pymap))["id"]
    payload = await _update(client, account_id, smtp=smtp_server.smtp_input(), removeSmtp=True)
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "smtp")
    assert smtp_server.attempts == []


async def test_another_users_account_is_not_found_and_no_login_is_tried(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp_server: SmtpServer
) -> None:
    owner = gql.as_user((await new_user()).token)
    account_id = (await add_account(owner, pymap))["id"]
    stranger = gql.as_user((await new_user(company="Other Co")).token)
    payload = await _update(stranger, account_id, smtp=smtp_server.smtp_input())
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    assert smtp_server.attempts == []


async def test_moving_imap_onto_another_accounts_mailbox_is_duplicate_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    """Two of one user's accounts on the same mailbox would sync it twice, whether added
    so or edited so."""
    client = gql.as_user((await new_user(plan=Plan.POWER)).token)
    first = await add_account(client, dovecot)
    second = await add_account(client, dovecot)
    before = await _row(runtime, second["id"])
    taken = {
        "host": dovecot.host.upper(),
        "port": dovecot.port,
        "security": "NONE",
        "username": first["imap"]["username"],
        "password": dovecot.password,
    }
    payload = await _update(client, second["id"], imap=taken)
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("DUPLICATE_ACCOUNT", "imap.username")
    assert _columns(await _row(runtime, second["id"])) == _columns(before)
    # Its own login again is no duplicate.
    own = {**taken, "host": dovecot.host, "username": second["imap"]["username"]}
    assert (await _update(client, second["id"], imap=own))["userErrors"] == []
