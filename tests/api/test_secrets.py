"""Passwords never leave the request in readable form: not in any table (as text, base64 or
hex), not in any GraphQL answer, not in any log line the app writes, even at DEBUG for every
logger (aioimaplib included) and for passwords that need IMAP quoting."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest

from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.secrets import (
    all_logs_at_debug,
    assert_absent,
    database_dump,
    log_text,
    secret_forms,
    secret_fragments,
)
from tests.support.smtp_server import (  # noqa: F401
    SmtpServer,
    running_smtp_server,
    smtp_server_fixture,
)

NewUser = Callable[..., Awaitable[TestUser]]

ACCOUNTS = """
query {
  mailAccounts {
    id emailAddress displayName status lastError
    imap { host port security username }
    smtp { host port security username }
  }
}
"""


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
        with all_logs_at_debug(caplog) as records:
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

    secrets = secret_forms(imap_password) + secret_forms(smtp.password, smtp_user=smtp.username)
    assert_absent(response.text, secrets, "the addMailAccount response")
    assert_absent(listed.text, secrets, "the mailAccounts response")
    assert "password" not in response.text.lower()
    assert "password" not in listed.text.lower()
    assert records, "no log records were captured at all"
    assert_absent(log_text(caplog, records), secrets, "the logs")
    dump = await database_dump(runtime)
    assert imap_user in dump  # the dump does hold the account...
    assert_absent(dump, secrets, "the database")  # ...but not its passwords


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
    with all_logs_at_debug(caplog) as records:
        response = await client.post(
            ADD_ACCOUNT, {"input": account_input(imap_server, password=QUOTED_PASSWORD)}
        )
    payload = response.json()["data"]["addMailAccount"]
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "imap.password")

    secrets = secret_forms(QUOTED_PASSWORD) + secret_fragments(QUOTED_PASSWORD)
    assert_absent(response.text, secrets, "the response")
    assert records, "no log records were captured at all"
    assert_absent(log_text(caplog, records), secrets, "the logs")
    assert_absent(await database_dump(runtime), secrets, "the database")


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
    with all_logs_at_debug(caplog) as records:
        response = await client.post(ADD_ACCOUNT, {"input": input_})
    payload = response.json()["data"]["addMailAccount"]
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CREDENTIALS", "smtp.password")

    secrets = (
        secret_forms(QUOTED_PASSWORD, smtp_user=smtp_server.username)
        + secret_fragments(QUOTED_PASSWORD)
        + secret_forms(pymap.password)
    )
    assert_absent(response.text, secrets, "the response")
    assert_absent(log_text(caplog, records), secrets, "the logs")
    assert_absent(await database_dump(runtime), secrets, "the database")
