"""Small async factories: rows a test needs, made through the services."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from core.db import session_scope
from core.identity.service import create_user
from core.models import Plan
from core.runtime import Runtime
from tests.support.mailservers import ImapServer

_sequence = itertools.count(1)


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a test class

    id: uuid.UUID
    company_id: uuid.UUID
    company: str
    email: str
    token: str


async def make_user(
    runtime: Runtime,
    *,
    company: str = "Acme",
    plan: Plan | None = None,
    admin: bool = False,
    email: str | None = None,
) -> TestUser:
    email = email or f"user{next(_sequence)}@{company.lower().replace(' ', '')}.example.com"
    async with session_scope(runtime.session_factory) as session:
        created = await create_user(
            session, company_name=company, email=email, plan=plan, admin=admin
        )
    return TestUser(created.user.id, created.company.id, company, email, created.token)


def imap_input(server: ImapServer, **overrides: Any) -> dict[str, Any]:
    """The `imap` part of AddMailAccountInput for a test server (plain IMAP)."""
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": "NONE",
        "username": server.username,
        "password": server.password,
    }
    values.update(overrides)
    return values


def own_mailbox(server: ImapServer) -> dict[str, str]:
    """The login of a new mailbox on ``server`` (Dovecot): one user's accounts must each be
    another mailbox, since the same login twice is DUPLICATE_ACCOUNT."""
    username = f"box{next(_sequence)}-{uuid.uuid4().hex[:6]}@example.test"
    server.add_user(username, server.password)
    return {"username": username, "password": server.password}


def account_input(server: ImapServer, address: str | None = None, **imap: Any) -> dict[str, Any]:
    return {
        "emailAddress": address or f"box{next(_sequence)}@example.com",
        "imap": imap_input(server, **imap),
    }


ADD_ACCOUNT = """
mutation Add($input: AddMailAccountInput!) {
  addMailAccount(input: $input) {
    account {
      id emailAddress displayName status isDefault sharing labels pastSync
      imap { host port security username }
      smtp { host port security username }
      folders { name role selected }
    }
    userErrors { code field message }
  }
}
"""
