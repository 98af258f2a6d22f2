"""syncUsage: an admin's view of every company user's accounts against the plan's limit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from core.models import Plan
from core.runtime import Runtime
from tests.support.accounts import NewUser, add_accounts, set_plan
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

SYNC_USAGE = """
query {
  syncUsage {
    user { id email role }
    accountLimit
    accounts { id emailAddress status lastSyncedAt isDefault }
  }
}
"""


@contextmanager
def counted_statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _by_email(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["user"]["email"]: row for row in rows}


async def _company_with_accounts(
    gql: GraphQLClient,
    new_user: NewUser,
    dovecot: ImapServer,
    *,
    company: str,
    users: int,
    accounts_each: int,
) -> TestUser:
    """An ENTERPRISE company: an admin plus ``users - 1`` regulars, each with accounts."""
    admin = await new_user(company=company, plan=Plan.ENTERPRISE, admin=True)
    members = [admin] + [await new_user(company=company) for _ in range(users - 1)]
    for member in members:
        await add_accounts(gql.as_user(member.token), dovecot, accounts_each)
    return admin


async def test_admin_sees_every_user_of_the_company_with_their_accounts(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    admin = await new_user(company="Usage Co", plan=Plan.PROFESSIONAL, admin=True)
    busy = await new_user(company="Usage Co")
    idle = await new_user(company="Usage Co")
    outsider = await new_user(company="Not Usage Co", plan=Plan.PROFESSIONAL, admin=True)
    busy_accounts = await add_accounts(gql.as_user(busy.token), dovecot, 2)
    admin_accounts = await add_accounts(gql.as_user(admin.token), dovecot, 1)
    await add_accounts(gql.as_user(outsider.token), dovecot, 1)

    data = await gql.as_user(admin.token).execute(SYNC_USAGE)

    rows = _by_email(data["syncUsage"])
    assert set(rows) == {admin.email, busy.email, idle.email}
    assert {row["accountLimit"] for row in rows.values()} == {2}
    assert rows[admin.email]["user"]["role"] == "ADMIN"
    assert rows[busy.email]["user"]["role"] == "REGULAR"
    assert rows[idle.email]["accounts"] == []
    for user, expected in ((busy, busy_accounts), (admin, admin_accounts)):
        listed = rows[user.email]["accounts"]
        assert [a["id"] for a in listed] == [a["id"] for a in expected]
        assert [a["emailAddress"] for a in listed] == [a["emailAddress"] for a in expected]
        assert {a["status"] for a in listed} == {"READY"}
        assert {a["lastSyncedAt"] for a in listed} == {None}
        assert rows[user.email]["user"]["id"] == str(user.id)


async def test_sync_usage_follows_plan_changes(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    admin = await new_user(company="Usage Shrink Co", plan=Plan.POWER, admin=True)
    member = await new_user(company="Usage Shrink Co")
    oldest, newest = await add_accounts(gql.as_user(member.token), dovecot, 2)

    await set_plan(runtime, "Usage Shrink Co", Plan.ADVANCED)
    data = await gql.as_user(admin.token).execute(SYNC_USAGE)

    rows = _by_email(data["syncUsage"])
    assert {row["accountLimit"] for row in rows.values()} == {1}
    assert [(a["id"], a["status"]) for a in rows[member.email]["accounts"]] == [
        (oldest["id"], "READY"),
        (newest["id"], "PAUSED"),
    ]
    assert rows[admin.email]["accounts"] == []


async def test_regular_user_gets_a_forbidden_top_level_error(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    await new_user(company="Usage Co", plan=Plan.PROFESSIONAL, admin=True)
    regular = await new_user(company="Usage Co")
    await add_accounts(gql.as_user(regular.token), dovecot, 1)

    response = await gql.as_user(regular.token).post(SYNC_USAGE)

    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["syncUsage"]


async def test_sync_usage_statement_count_does_not_grow_with_the_company(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    small = await _company_with_accounts(
        gql, new_user, dovecot, company="Small Co", users=2, accounts_each=1
    )
    large = await _company_with_accounts(
        gql, new_user, dovecot, company="Large Co", users=4, accounts_each=2
    )

    with counted_statements(runtime) as small_statements:
        small_data = await gql.as_user(small.token).execute(SYNC_USAGE)
    with counted_statements(runtime) as large_statements:
        large_data = await gql.as_user(large.token).execute(SYNC_USAGE)

    assert [len(row["accounts"]) for row in small_data["syncUsage"]] == [1] * 2
    assert [len(row["accounts"]) for row in large_data["syncUsage"]] == [2] * 4
    assert {row["accountLimit"] for row in large_data["syncUsage"]} == {5}
    # The listener sees the app's queries (the same process and event loop as the test).
    assert any("FROM mail_accounts" in s for s in small_statements), small_statements
    assert len(large_statements) == len(small_statements), (
        small_statements,
        large_statements,
    )
