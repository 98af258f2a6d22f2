"""What a user may point the service at: mail ports only, no line breaks in a login, and
no database connection or row lock held while a mail server takes its time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from core.db import session_scope
from core.models import MailAccount
from core.runtime import Runtime
from core.settings import Settings
from tests.support.accounts import NewUser
from tests.support.app import serve
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.silent_server import silent_tcp_server
from tests.support.sync import START


def _errors(data: dict[str, Any], mutation: str) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in data[mutation]["userErrors"]]


async def test_a_port_that_is_no_mail_port_is_refused_without_connecting(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient, new_user: NewUser
) -> None:
    """With the production default of MAILSYNC_MAIL_PORTS, error texts cannot tell open
    ports from closed ones: nothing is connected to at all."""
    user = await new_user()
    async with (
        serve(make_settings(mail_ports="25,465,587,143,993,2525")) as app,
        silent_tcp_server() as (port, connections),
    ):
        client = GraphQLClient(http, app.graphql_url, user.token)
        imap = {"host": "127.0.0.1", "port": port, "security": "NONE", "password": "x"}
        data = await client.execute(
            ADD_ACCOUNT, {"input": {"emailAddress": "a@example.com", "imap": imap}}
        )
    assert _errors(data, "addMailAccount") == [("HOST_NOT_ALLOWED", "imap.port")]
    assert connections == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "alice\r\nA1 DELETE INBOX"),
        ("username", "alice\nx"),
        ("password", "secret\r\nA2 LOGOUT"),
        ("host", "127.0.0.1\r\nx"),
    ],
)
async def test_line_breaks_in_a_login_are_invalid_input_and_never_sent(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, field: str, value: str
) -> None:
    """An IMAP quoted string ends at CR LF: the rest would be a command of the user's own."""
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT, {"input": account_input(dovecot, **{field: value})}
    )
    [(code, error_field)] = _errors(data, "addMailAccount")
    assert code == "INVALID_INPUT"
    assert error_field is not None and error_field.startswith("imap.")


async def test_an_unknown_label_asks_the_server_without_holding_a_lock_or_a_connection(
    http: httpx.AsyncClient,
    new_user: NewUser,
    runtime: Runtime,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
) -> None:
    """40 parallel calls against a tarpit held the pool (another user's `me` took 32 s) and
    made 25 logins in 12 s past the login-check limit. Now: the folder list is asked for
    outside the transaction, and each ask is a login check (10 a minute). The tarpit holds
    each login for the 20 s mail timeout, so a bystander held up by it would wait ~19 s;
    5 s leaves room for a loaded machine."""
    owner = await new_user()
    bystander = await new_user()
    async with serve(make_settings(mail_timeout_seconds=20.0)) as app:
        gql = GraphQLClient(http, app.graphql_url)
        await _unknown_label_calls(gql, owner, bystander, runtime, dovecot)


async def _unknown_label_calls(
    gql: GraphQLClient, owner: TestUser, bystander: TestUser, runtime: Runtime, dovecot: ImapServer
) -> None:
    client = gql.as_user(owner.token)
    added = await client.execute(ADD_ACCOUNT, {"input": account_input(dovecot)})
    account_id = added["addMailAccount"]["account"]["id"]
    calls = 2 * runtime.settings.credential_checks_per_minute + 5
    async with silent_tcp_server() as (port, connections):
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(MailAccount)
                .where(MailAccount.owner_id == owner.id)
                .values(imap_host="127.0.0.1", imap_port=port)
            )
        start = {"accountId": account_id, "labels": ["Made Since"], "pastSync": "ALL"}
        pending = [
            asyncio.create_task(client.execute(START, {"input": start})) for _ in range(calls)
        ]
        await asyncio.sleep(1.0)  # every call is waiting on the tarpit or refused by now
        started = time.monotonic()
        me = await gql.as_user(bystander.token).execute("{ me { id } mailAccounts { id } }")
        bystander_waited = time.monotonic() - started
        results = await asyncio.gather(*pending)
    assert me["me"]["id"] == str(bystander.id)
    assert bystander_waited < 5, f"another user waited {bystander_waited:.1f} s"
    codes = sorted(code for data in results for code, _ in _errors(data, "startSync"))
    limit = runtime.settings.credential_checks_per_minute - 1  # addMailAccount used one
    assert codes.count("RATE_LIMITED") == calls - limit
    assert codes.count("SERVER_UNREACHABLE") == limit
    assert len(connections) == limit  # one login per counted check, none beyond
