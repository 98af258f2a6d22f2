"""reconnectMailAccount: a new password is proven before it is stored; a refused one changes
nothing (status, stored ciphertext), an accepted one brings an AUTH_FAILED account back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update

from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401

NewUser = Callable[..., Awaitable[TestUser]]

RECONNECT = """
mutation Reconnect($input: ReconnectMailAccountInput!) {
  reconnectMailAccount(input: $input) {
    account { id status lastError imap { host port security username } }
    userErrors { code field message }
  }
}
"""

ACCOUNT = """
query Account($id: ID!) { mailAccount(id: $id) { id status lastError } }
"""


async def _add(client: GraphQLClient, server: ImapServer, **extra: Any) -> uuid.UUID:
    data = await client.execute(ADD_ACCOUNT, {"input": {**account_input(server), **extra}})
    payload = data["addMailAccount"]
    assert payload["userErrors"] == [], payload
    return uuid.UUID(payload["account"]["id"])


async def _row(runtime: Runtime, account_id: uuid.UUID) -> MailAccount:
    async with runtime.session_factory() as session:
        row = await session.scalar(select(MailAccount).where(MailAccount.id == account_id))
    assert row is not None
    return row


async def _mark_auth_failed(runtime: Runtime, account_id: uuid.UUID) -> None:
    """What the sync engine does when the server starts refusing the stored password."""
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id)
            .values(
                status=AccountStatus.AUTH_FAILED,
                last_error="The server refused the login.",
                consecutive_failures=3,
            )
        )


async def _reconnect(client: GraphQLClient, account_id: uuid.UUID, **passwords: str) -> Any:
    data = await client.execute(RECONNECT, {"input": {"accountId": str(account_id), **passwords}})
    return data["reconnectMailAccount"]


async def test_wrong_password_is_refused_and_changes_nothing(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, pymap)
    await _mark_auth_failed(runtime, account_id)
    before = await _row(runtime, account_id)

    payload = await _reconnect(client, account_id, imapPassword="still-the-wrong-one")

    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID_CREDENTIALS"
    assert "still-the-wrong-one" not in error["message"]
    after = await _row(runtime, account_id)
    assert after.status is AccountStatus.AUTH_FAILED
    assert after.imap_password_encrypted == before.imap_password_encrypted
    assert after.last_error == before.last_error
    seen = await client.execute(ACCOUNT, {"id": str(account_id)})
    assert seen["mailAccount"]["status"] == "AUTH_FAILED"
    assert error["field"] == "imapPassword"  # the input field at fault


async def test_right_password_brings_the_account_back_to_ready(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, imap_server)
    await _mark_auth_failed(runtime, account_id)
    before = await _row(runtime, account_id)

    payload = await _reconnect(client, account_id, imapPassword=imap_server.password)

    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "READY"
    assert account["lastError"] is None
    after = await _row(runtime, account_id)
    assert after.status is AccountStatus.READY
    assert after.last_error is None
    assert after.consecutive_failures == 0
    # Freshly sealed (new nonce), and still the working password.
    assert after.imap_password_encrypted != before.imap_password_encrypted
    seen = await client.execute(ACCOUNT, {"id": str(account_id)})
    assert seen["mailAccount"] == {"id": str(account_id), "status": "READY", "lastError": None}


async def test_smtp_password_for_an_account_without_smtp_is_invalid_input(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, pymap)
    await _mark_auth_failed(runtime, account_id)
    before = await _row(runtime, account_id)

    payload = await _reconnect(
        client, account_id, imapPassword=pymap.password, smtpPassword="smtp-secret"
    )

    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "smtpPassword")
    after = await _row(runtime, account_id)
    assert after.status is AccountStatus.AUTH_FAILED
    assert after.imap_password_encrypted == before.imap_password_encrypted


async def test_empty_imap_password_is_invalid_input(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, pymap)
    before = await _row(runtime, account_id)
    payload = await _reconnect(client, account_id, imapPassword="")
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "imapPassword")
    assert (await _row(runtime, account_id)).imap_password_encrypted == (
        before.imap_password_encrypted
    )


async def test_wrong_smtp_password_is_refused_and_changes_nothing(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, pymap, smtp=smtp_server.smtp_input())
    await _mark_auth_failed(runtime, account_id)
    before = await _row(runtime, account_id)

    payload = await _reconnect(
        client, account_id, imapPassword=pymap.password, smtpPassword="wrong-smtp-password"
    )

    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID_CREDENTIALS"
    after = await _row(runtime, account_id)
    assert after.status is AccountStatus.AUTH_FAILED
    assert after.imap_password_encrypted == before.imap_password_encrypted
    assert after.smtp_password_encrypted == before.smtp_password_encrypted
    assert error["field"] == "smtpPassword"  # the input field at fault


async def test_right_smtp_password_is_verified_and_stored(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _add(client, pymap, smtp=smtp_server.smtp_input())
    await _mark_auth_failed(runtime, account_id)
    logins_before = len(smtp_server.successful_logins)

    payload = await _reconnect(
        client, account_id, imapPassword=pymap.password, smtpPassword=smtp_server.password
    )

    assert payload["userErrors"] == []
    assert payload["account"]["status"] == "READY"
    assert len(smtp_server.successful_logins) == logins_before + 1  # really checked
    after = await _row(runtime, account_id)
    assert after.smtp_password_encrypted is not None
    assert (
        runtime.key_ring.decrypt(after.smtp_password_encrypted, f"mail_account:{account_id}:smtp")
        == smtp_server.password
    )


async def test_reconnect_replaces_a_stored_secret_that_no_longer_decrypts(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    """The recovery path: when the stored ciphertext cannot be read any more (its key was
    retired, or the row was damaged), typing the password again must fix the account; the
    old password is not needed to store a new one."""
    first, second = await new_user(), await new_user()
    foreign = await _add(gql.as_user(first.token), pymap)
    client = gql.as_user(second.token)
    account_id = await _add(client, pymap)
    unreadable = (await _row(runtime, foreign)).imap_password_encrypted  # bound to another row
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id)
            .values(imap_password_encrypted=unreadable, status=AccountStatus.AUTH_FAILED)
        )

    response = await client.post(
        RECONNECT, {"input": {"accountId": str(account_id), "imapPassword": pymap.password}}
    )

    body = response.json()
    assert "errors" not in body, body["errors"]
    payload = body["data"]["reconnectMailAccount"]
    assert payload["userErrors"] == []
    assert payload["account"]["status"] == "READY"
    after = await _row(runtime, account_id)
    assert (
        runtime.key_ring.decrypt(after.imap_password_encrypted, f"mail_account:{account_id}:imap")
        == pymap.password
    )


async def test_unknown_account_is_not_found(gql: GraphQLClient, new_user: NewUser) -> None:
    user = await new_user()
    payload = await _reconnect(
        gql.as_user(user.token), uuid.uuid4(), imapPassword="anything-at-all"
    )
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", "accountId")
