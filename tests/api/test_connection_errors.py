"""addMailAccount maps every way a login can fail to the code a user can act on, and stores
nothing when it fails: wrong password, unreachable or silent server, unknown host, TLS
problems, private hosts, and invalid input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.models import Folder, MailAccount
from core.runtime import Runtime
from core.settings import Settings
from tests.support.app import free_port, serve
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.silent_server import silent_tcp_server

NewUser = Callable[..., Awaitable[TestUser]]
MakeSettings = Callable[..., Settings]

LOOPBACK = "127.0.0.1"


async def _rows(runtime: Runtime) -> tuple[int, int]:
    async with runtime.session_factory() as session:
        accounts = await session.scalar(select(func.count()).select_from(MailAccount))
        folders = await session.scalar(select(func.count()).select_from(Folder))
    return accounts or 0, folders or 0


def _single_error(data: dict[str, Any]) -> dict[str, Any]:
    payload = data["addMailAccount"]
    assert payload["account"] is None, payload
    errors: list[dict[str, Any]] = payload["userErrors"]
    assert len(errors) == 1, errors
    return errors[0]


async def _add(client: GraphQLClient, input_: dict[str, Any]) -> dict[str, Any]:
    return await client.execute(ADD_ACCOUNT, {"input": input_})


async def _expect_failure(
    client: GraphQLClient,
    runtime: Runtime,
    input_: dict[str, Any],
    code: str,
    field: str,
) -> dict[str, Any]:
    error = _single_error(await _add(client, input_))
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]
    assert input_["imap"]["password"] not in error["message"]
    assert await _rows(runtime) == (0, 0)
    return error


@asynccontextmanager
async def _other_app(
    make_settings: MakeSettings, http: httpx.AsyncClient, token: str, **settings: Any
) -> AsyncIterator[GraphQLClient]:
    async with serve(make_settings(**settings)) as app:
        yield GraphQLClient(http, app.graphql_url, token)


# -- INVALID_CREDENTIALS ---------------------------------------------------------------------


async def test_wrong_imap_password_is_invalid_credentials_and_nothing_is_stored(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    await _expect_failure(
        client,
        runtime,
        account_input(imap_server, password="definitely-wrong"),
        "INVALID_CREDENTIALS",
        "imap.password",
    )
    me = await client.execute("{ me { mailAccounts { id } defaultAccount { id } } }")
    assert me["me"] == {"mailAccounts": [], "defaultAccount": None}


async def test_unknown_imap_user_is_invalid_credentials(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    await _expect_failure(
        gql.as_user(user.token),
        runtime,
        account_input(imap_server, username="nobody-here", password="secret-123"),
        "INVALID_CREDENTIALS",
        "imap.password",
    )


# -- SERVER_UNREACHABLE ----------------------------------------------------------------------


async def test_closed_port_is_server_unreachable(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    await _expect_failure(
        gql.as_user(user.token),
        runtime,
        account_input(pymap, host=LOOPBACK, port=free_port()),
        "SERVER_UNREACHABLE",
        "imap.host",
    )


@pytest.mark.parametrize(
    "greeting", [b"", b"* OK IMAP4rev1 ready\r\n"], ids=["silent", "greets-then-silent"]
)
async def test_silent_server_is_server_unreachable_within_the_mail_timeout(
    make_settings: MakeSettings,
    http: httpx.AsyncClient,
    new_user: NewUser,
    pymap: ImapServer,
    runtime: Runtime,
    greeting: bytes,
) -> None:
    """greets-then-silent: aioimaplib 2.0's wait_hello_from_server holds a lock until its
    CAPABILITY is answered, and on Python 3.13 a cancelled wait could not leave without it:
    the request hung for good, and the app's shutdown after it. core/mail/protocol.py waits
    on an event instead."""
    user = await new_user()
    async with (
        silent_tcp_server(greeting) as (port, connections),
        _other_app(make_settings, http, user.token, mail_timeout_seconds=1) as client,
    ):
        started = time.monotonic()
        async with asyncio.timeout(30):
            data = await _add(client, account_input(pymap, host=LOOPBACK, port=port))
        error = _single_error(data)
        elapsed = time.monotonic() - started
    assert (error["code"], error["field"]) == ("SERVER_UNREACHABLE", "imap.host")
    assert connections, "the app never connected to the silent server"
    assert elapsed < 5, f"took {elapsed:.1f} s with a 1 s mail timeout"
    assert await _rows(runtime) == (0, 0)


async def test_unresolvable_host_is_server_unreachable(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    await _expect_failure(
        gql.as_user(user.token),
        runtime,
        account_input(pymap, host="nonexistent.invalid"),
        "SERVER_UNREACHABLE",
        "imap.host",
    )


# -- TLS -------------------------------------------------------------------------------------


async def test_ssl_with_untrusted_certificate_is_tls_failed(
    make_settings: MakeSettings,
    http: httpx.AsyncClient,
    new_user: NewUser,
    dovecot: ImapServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    input_ = account_input(dovecot, host="localhost", port=dovecot.ssl_port, security="SSL")
    async with _other_app(make_settings, http, user.token, tls_ca_file=None) as client:
        await _expect_failure(client, runtime, input_, "TLS_FAILED", "imap.security")


async def test_ssl_to_a_plain_port_is_tls_failed(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    await _expect_failure(
        gql.as_user(user.token),
        runtime,
        account_input(imap_server, security="SSL"),
        "TLS_FAILED",
        "imap.security",
    )


@pytest.mark.parametrize("host", ["localhost", LOOPBACK])
async def test_ssl_with_trusted_certificate_is_ready(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime, host: str
) -> None:
    user = await new_user()
    data = await _add(
        gql.as_user(user.token),
        account_input(dovecot, host=host, port=dovecot.ssl_port, security="SSL"),
    )
    payload = data["addMailAccount"]
    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "READY"
    assert account["imap"] == {
        "host": host,
        "port": dovecot.ssl_port,
        "security": "SSL",
        "username": dovecot.username,
    }
    assert "INBOX" in {f["name"] for f in account["folders"]}
    assert await _rows(runtime) == (1, len(account["folders"]))


async def test_starttls_on_dovecot_is_ready(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    data = await _add(gql.as_user(user.token), account_input(dovecot, security="STARTTLS"))
    payload = data["addMailAccount"]
    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "READY"
    assert account["imap"]["security"] == "STARTTLS"
    assert account["imap"]["port"] == dovecot.port
    assert await _rows(runtime) == (1, len(account["folders"]))


async def test_starttls_to_a_server_without_starttls_is_tls_failed(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    await _expect_failure(
        gql.as_user(user.token),
        runtime,
        account_input(pymap, security="STARTTLS"),
        "TLS_FAILED",
        "imap.security",
    )


async def test_starttls_with_untrusted_certificate_is_tls_failed(
    make_settings: MakeSettings,
    http: httpx.AsyncClient,
    new_user: NewUser,
    dovecot: ImapServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    input_ = account_input(dovecot, security="STARTTLS")
    async with _other_app(make_settings, http, user.token, tls_ca_file=None) as client:
        await _expect_failure(client, runtime, input_, "TLS_FAILED", "imap.security")


# -- HOST_NOT_ALLOWED ------------------------------------------------------------------------


@pytest.mark.parametrize("host", [LOOPBACK, "localhost"])
async def test_private_host_is_refused_without_connecting(
    make_settings: MakeSettings,
    http: httpx.AsyncClient,
    new_user: NewUser,
    pymap: ImapServer,
    runtime: Runtime,
    host: str,
) -> None:
    user = await new_user()
    async with (
        silent_tcp_server() as (port, connections),
        _other_app(make_settings, http, user.token, allow_private_hosts=False) as client,
    ):
        await _expect_failure(
            client,
            runtime,
            account_input(pymap, host=host, port=port),
            "HOST_NOT_ALLOWED",
            "imap.host",
        )
        await asyncio.sleep(0.05)  # a connection attempt would have been accepted by now
    assert connections == []


async def test_private_real_server_is_refused_even_with_the_right_password(
    make_settings: MakeSettings,
    http: httpx.AsyncClient,
    new_user: NewUser,
    pymap: ImapServer,
    runtime: Runtime,
) -> None:
    assert Settings.model_fields["allow_private_hosts"].default is False  # what production runs
    user = await new_user()
    async with _other_app(make_settings, http, user.token, allow_private_hosts=False) as client:
        await _expect_failure(
            client, runtime, account_input(pymap), "HOST_NOT_ALLOWED", "imap.host"
        )


# -- INVALID_INPUT ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"emailAddress": "not-an-address"}, "emailAddress"),
        ({"emailAddress": "two@@example.com"}, "emailAddress"),
        ({"emailAddress": ""}, "emailAddress"),
        ({"imap": {"port": 0}}, "imap.port"),
        ({"imap": {"port": 70000}}, "imap.port"),
        ({"imap": {"port": -1}}, "imap.port"),
        ({"imap": {"password": ""}}, "imap.password"),
        ({"imap": {"host": ""}}, "imap.host"),
        ({"imap": {"host": "   "}}, "imap.host"),
        ({"imap": {"host": "mail example.com"}}, "imap.host"),
    ],
    ids=[
        "bad-address",
        "double-at",
        "empty-address",
        "port-0",
        "port-70000",
        "port-negative",
        "empty-password",
        "empty-host",
        "blank-host",
        "host-with-space",
    ],
)
async def test_invalid_input_names_the_field(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    runtime: Runtime,
    change: dict[str, Any],
    field: str,
) -> None:
    user = await new_user()
    input_ = account_input(pymap)
    if "imap" in change:
        input_["imap"] = {**input_["imap"], **change["imap"]}
    else:
        input_.update(change)
    error = _single_error(await _add(gql.as_user(user.token), input_))
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field), error
    assert await _rows(runtime) == (0, 0)
