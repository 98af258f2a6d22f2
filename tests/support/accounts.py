"""Helpers for the account API tests: connect accounts over HTTP, read what was stored."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from core.accounts.service import change_company_plan
from core.db import session_scope
from core.models import Folder, MailAccount, Plan, User
from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input, own_mailbox
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

NewUser = Callable[..., Awaitable[TestUser]]

ACCOUNT_FIELDS = "id emailAddress displayName status isDefault sharing"

ME = f"""
query {{
  me {{
    id email
    company {{ plan accountLimit }}
    defaultAccount {{ {ACCOUNT_FIELDS} }}
    mailAccounts {{ {ACCOUNT_FIELDS} }}
  }}
}}
"""

MAIL_ACCOUNTS = f"query {{ mailAccounts {{ {ACCOUNT_FIELDS} }} }}"

MAIL_ACCOUNT = f"""
query Account($id: ID!) {{
  mailAccount(id: $id) {{ {ACCOUNT_FIELDS} owner {{ email }} }}
}}
"""

UPDATE_ACCOUNT = f"""
mutation Update($input: UpdateMailAccountInput!) {{
  updateMailAccount(input: $input) {{
    account {{ {ACCOUNT_FIELDS} }}
    userErrors {{ code field message }}
  }}
}}
"""

RECONNECT_ACCOUNT = f"""
mutation Reconnect($input: ReconnectMailAccountInput!) {{
  reconnectMailAccount(input: $input) {{
    account {{ {ACCOUNT_FIELDS} }}
    userErrors {{ code field message }}
  }}
}}
"""

REMOVE_ACCOUNT = """
mutation Remove($id: ID!) {
  removeMailAccount(accountId: $id) {
    removedAccountId
    userErrors { code field message }
  }
}
"""

SET_DEFAULT = f"""
mutation SetDefault($id: ID) {{
  setDefaultAccount(accountId: $id) {{
    user {{ id defaultAccount {{ {ACCOUNT_FIELDS} }} }}
    userErrors {{ code field message }}
  }}
}}
"""


async def try_add_account(
    client: GraphQLClient, server: ImapServer, address: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The addMailAccount payload, whatever it says. On Dovecot each account is a mailbox
    of its own (a new user)."""
    login = own_mailbox(server) if server.name == "dovecot" else {}
    data = await client.execute(
        ADD_ACCOUNT, {"input": {**account_input(server, address, **login), **extra}}
    )
    payload: dict[str, Any] = data["addMailAccount"]
    return payload


async def add_account(
    client: GraphQLClient, server: ImapServer, address: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Connect an account that must be accepted; the account as the API returns it."""
    payload = await try_add_account(client, server, address, **extra)
    assert payload["userErrors"] == [], payload["userErrors"]
    account: dict[str, Any] = payload["account"]
    return account


async def add_accounts(
    client: GraphQLClient, server: ImapServer, count: int
) -> list[dict[str, Any]]:
    """``count`` accounts, one after the other (oldest first)."""
    return [await add_account(client, server) for _ in range(count)]


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def account_row(runtime: Runtime, account_id: str | uuid.UUID) -> MailAccount | None:
    async with runtime.session_factory() as session:
        return await session.get(MailAccount, uuid.UUID(str(account_id)))


async def owned_rows(runtime: Runtime, user_id: uuid.UUID) -> list[MailAccount]:
    """The user's stored accounts, oldest first."""
    async with runtime.session_factory() as session:
        return list(
            await session.scalars(
                select(MailAccount)
                .where(MailAccount.owner_id == user_id)
                .order_by(MailAccount.created_at, MailAccount.id)
            )
        )


async def count_accounts(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return await session.scalar(select(func.count()).select_from(MailAccount)) or 0


async def count_folders(runtime: Runtime, account_id: str | uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        return (
            await session.scalar(
                select(func.count())
                .select_from(Folder)
                .where(Folder.account_id == uuid.UUID(str(account_id)))
            )
            or 0
        )


async def default_account_id(runtime: Runtime, user_id: uuid.UUID) -> uuid.UUID | None:
    async with runtime.session_factory() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.default_account_id


async def set_plan(runtime: Runtime, company: str, plan: Plan) -> list[MailAccount]:
    """What `mailsync set-plan` does: change the plan and pause/resume accounts to fit."""
    async with session_scope(runtime.session_factory) as session:
        return await change_company_plan(session, runtime, company, plan)


def snapshot(row: MailAccount | None) -> dict[str, Any]:
    """The user-visible and secret columns of an account, to compare before and after."""
    assert row is not None
    return {
        "email_address": row.email_address,
        "display_name": row.display_name,
        "status": row.status,
        "paused_reason": row.paused_reason,
        "sharing": row.sharing,
        "labels": list(row.labels),
        "imap_password_encrypted": row.imap_password_encrypted,
        "updated_at": row.updated_at,
    }
