"""addMailAccount against real IMAP servers: what is stored, and what is not on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from core.models import Folder, MailAccount
from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

NewUser = Callable[..., Awaitable[TestUser]]


async def _account_rows(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return await session.scalar(select(func.count()).select_from(MailAccount)) or 0


async def test_verified_account_is_ready_with_folders_and_becomes_default(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT,
        {"input": {**account_input(imap_server, "Sales@Example.COM"), "displayName": "Sales"}},
    )
    payload = data["addMailAccount"]
    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "READY"
    assert account["emailAddress"] == "sales@example.com"  # normalised
    assert account["displayName"] == "Sales"
    assert account["isDefault"] is True
    assert account["sharing"] == "PRIVATE"
    assert account["labels"] == [] and account["pastSync"] is None
    assert account["imap"]["username"] == imap_server.username
    roles = {f["name"]: f["role"] for f in account["folders"]}
    assert roles["INBOX"] == "INBOX"
    assert roles["Sent"] == "SENT"
    assert roles["Trash"] == "TRASH"
    if imap_server.name == "dovecot":  # SPECIAL-USE attributes
        assert roles["Drafts"] == "DRAFTS" and roles["Junk"] == "JUNK"
        assert roles["Archive"] == "ARCHIVE"
    assert not any(f["selected"] for f in account["folders"])
    async with runtime.session_factory() as session:
        stored = await session.scalar(select(func.count()).select_from(Folder))
    assert stored == len(account["folders"])


async def test_wrong_password_is_invalid_credentials_and_stores_nothing(
    gql: GraphQLClient, new_user: NewUser, imap_server: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(
        ADD_ACCOUNT, {"input": account_input(imap_server, password="wrong-password")}
    )
    payload = data["addMailAccount"]
    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID_CREDENTIALS"
    assert error["field"] == "imap.password"
    assert "wrong-password" not in error["message"]
    assert await _account_rows(runtime) == 0
