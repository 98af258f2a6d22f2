"""addMailAccount with an SMTP server: the SMTP login is really made, and a refused one
stores nothing even when IMAP was fine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from core.models import Folder, MailAccount
from core.runtime import Runtime
from tests.support.app import free_port
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import (  # noqa: F401
    SmtpServer,
    running_smtp_server,
    smtp_server_fixture,
)

NewUser = Callable[..., Awaitable[TestUser]]

SERVER_SETTINGS_FIELDS = """
query { __type(name: "ServerSettings") { fields { name } } }
"""


async def _rows(runtime: Runtime) -> tuple[int, int]:
    async with runtime.session_factory() as session:
        accounts = await session.scalar(select(func.count()).select_from(MailAccount))
        folders = await session.scalar(select(func.count()).select_from(Folder))
    return accounts or 0, folders or 0


def _keys(value: Any) -> set[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


async def test_account_with_smtp_logs_in_and_returns_settings_without_password(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    response = await client.post(
        ADD_ACCOUNT,
        {"input": {**account_input(pymap), "smtp": smtp_server.smtp_input()}},
    )
    body = response.json()
    payload = body["data"]["addMailAccount"]
    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "READY"
    assert account["smtp"] == {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "security": "NONE",
        "username": smtp_server.username,
    }
    # The SMTP server saw exactly one successful login, for that user.
    assert smtp_server.successful_logins == [smtp_server.username]
    # No password anywhere in the answer.
    assert not any("password" in key.lower() for key in _keys(body))
    assert smtp_server.password not in response.text
    assert pymap.password not in response.text
    # ... and the schema has no field to ask for it.
    fields = await client.execute(SERVER_SETTINGS_FIELDS)
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert names == {"host", "port", "security", "username"}
    assert await _rows(runtime) == (1, len(account["folders"]))


async def test_wrong_smtp_password_is_invalid_credentials_and_stores_nothing(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT,
        {
            "input": {
                **account_input(pymap),
                "smtp": smtp_server.smtp_input(password="not-the-smtp-password"),
            }
        },
    )
    payload = data["addMailAccount"]
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID_CREDENTIALS"
    assert error["field"] == "smtp.password"
    assert "not-the-smtp-password" not in error["message"]
    # The server really refused a login attempt; nothing was stored although IMAP was fine.
    attempts = smtp_server.attempts
    assert attempts
    assert not any(a.success for a in attempts)
    assert await _rows(runtime) == (0, 0)
    me = await gql.as_user(user.token).execute(
        "{ me { mailAccounts { id } defaultAccount { id } } }"
    )
    assert me["me"] == {"mailAccounts": [], "defaultAccount": None}


async def test_unreachable_smtp_server_is_server_unreachable_at_smtp_host(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT,
        {
            "input": {
                **account_input(pymap),
                "smtp": {
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "security": "NONE",
                    "password": "whatever",
                },
            }
        },
    )
    payload = data["addMailAccount"]
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("SERVER_UNREACHABLE", "smtp.host")
    assert await _rows(runtime) == (0, 0)


async def test_invalid_smtp_port_is_invalid_input_at_smtp_port(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT,
        {"input": {**account_input(pymap), "smtp": smtp_server.smtp_input(port=0)}},
    )
    payload = data["addMailAccount"]
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "smtp.port")
    assert smtp_server.attempts == []
    assert await _rows(runtime) == (0, 0)


async def _add_with_smtp(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp: dict[str, Any]
) -> dict[str, Any]:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT, {"input": {**account_input(pymap), "smtp": smtp}}
    )
    payload: dict[str, Any] = data["addMailAccount"]
    return payload


async def test_no_auth_on_a_plain_connection_says_so_not_tls_failed(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    """A server that offers AUTH only over TLS: the answer points at the security setting
    and at the relay option, and is not a TLS handshake failure that never happened."""
    with running_smtp_server(offer_auth=False) as server:
        payload = await _add_with_smtp(gql, new_user, pymap, server.smtp_input())
        assert server.attempts == []
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "smtp.security")
    assert "offers no login" in error["message"]
    assert "SSL or STARTTLS" in error["message"]
    assert "handshake" not in error["message"]
    assert await _rows(runtime) == (0, 0)


async def test_starttls_on_a_server_without_it_is_tls_failed_naming_starttls(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp_server: SmtpServer
) -> None:
    payload = await _add_with_smtp(
        gql, new_user, pymap, smtp_server.smtp_input(security="STARTTLS")
    )
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("TLS_FAILED", "smtp.security")
    assert "does not offer STARTTLS" in error["message"]
    assert smtp_server.attempts == []


async def test_ssl_to_a_plain_server_is_a_failed_handshake(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp_server: SmtpServer
) -> None:
    payload = await _add_with_smtp(gql, new_user, pymap, smtp_server.smtp_input(security="SSL"))
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("TLS_FAILED", "smtp.security")
    assert "TLS handshake" in error["message"]


async def test_a_relay_without_login_is_stored_with_an_empty_username(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    relay = smtp_server.smtp_input()
    del relay["username"], relay["password"]
    payload = await _add_with_smtp(gql, new_user, pymap, relay)
    assert payload["userErrors"] == []
    assert payload["account"]["smtp"] == {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "security": "NONE",
        "username": "",
    }
    assert smtp_server.attempts == []  # connected and greeted, never logged in
    async with runtime.session_factory() as session:
        row = await session.scalar(select(MailAccount))
    assert row is not None
    assert (row.smtp_username, row.smtp_password_encrypted) == (None, None)


async def test_a_username_without_password_is_invalid_input(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, smtp_server: SmtpServer
) -> None:
    payload = await _add_with_smtp(gql, new_user, pymap, smtp_server.smtp_input(password=""))
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "smtp.password")
    assert smtp_server.attempts == []
