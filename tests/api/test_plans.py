"""Plan rules for addMailAccount, and what a plan change does to existing accounts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from core.models import AccountStatus, PauseReason, Plan
from core.runtime import Runtime
from tests.support.accounts import (
    ME,
    REMOVE_ACCOUNT,
    NewUser,
    add_account,
    add_accounts,
    count_accounts,
    count_folders,
    default_account_id,
    error_codes,
    owned_rows,
    set_plan,
    try_add_account,
)
from tests.support.factories import ADD_ACCOUNT, account_input, own_mailbox
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer


async def _statuses(runtime: Runtime, user_id: uuid.UUID) -> list[AccountStatus]:
    return [row.status for row in await owned_rows(runtime, user_id)]


async def _api_statuses(client: GraphQLClient) -> dict[str, str]:
    data = await client.execute(ME)
    return {a["id"]: a["status"] for a in data["me"]["mailAccounts"]}


# -- adding ---------------------------------------------------------------------------------


async def test_essential_company_cannot_add_an_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Basic Co", plan=Plan.ESSENTIAL)
    client = gql.as_user(user.token)

    payload = await try_add_account(client, dovecot)

    assert payload["account"] is None
    assert error_codes(payload) == ["SYNC_NOT_IN_PLAN"]
    assert await count_accounts(runtime) == 0
    me = (await client.execute(ME))["me"]
    assert me["company"] == {"plan": "ESSENTIAL", "accountLimit": 0}
    assert me["defaultAccount"] is None


@pytest.mark.parametrize(
    ("plan", "limit"),
    [(Plan.ADVANCED, 1), (Plan.PROFESSIONAL, 2), (Plan.POWER, 3), (Plan.ENTERPRISE, 5)],
)
async def test_user_at_the_plan_limit_gets_plan_limit_reached(
    gql: GraphQLClient,
    new_user: NewUser,
    dovecot: ImapServer,
    runtime: Runtime,
    plan: Plan,
    limit: int,
) -> None:
    user = await new_user(company=f"{plan.value} Co", plan=plan)
    client = gql.as_user(user.token)
    me = (await client.execute(ME))["me"]
    assert me["company"] == {"plan": plan.value, "accountLimit": limit}

    added = await add_accounts(client, dovecot, limit)
    payload = await try_add_account(client, dovecot, "one-too-many@example.com")

    assert payload["account"] is None
    assert error_codes(payload) == ["PLAN_LIMIT_REACHED"]
    rows = await owned_rows(runtime, user.id)
    assert sorted(str(r.id) for r in rows) == sorted(a["id"] for a in added)
    assert "one-too-many@example.com" not in {r.email_address for r in rows}


async def test_limit_is_per_user_not_per_company(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    first = await new_user(company="Solo Co", plan=Plan.ADVANCED)
    teammate = await new_user(company="Solo Co")
    await add_account(gql.as_user(first.token), dovecot)

    account = await add_account(gql.as_user(teammate.token), dovecot)

    assert account["status"] == "READY"
    assert [str(r.id) for r in await owned_rows(runtime, teammate.id)] == [account["id"]]


async def test_same_address_twice_is_duplicate_account_whatever_the_case(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Dup Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    first = await add_account(client, dovecot, "sales@example.com")

    for variant in ("sales@example.com", "SALES@Example.COM", "Sales@example.com"):
        payload = await try_add_account(client, dovecot, variant)
        assert payload["account"] is None
        [error] = payload["userErrors"]
        assert error["code"] == "DUPLICATE_ACCOUNT"
        assert error["field"] == "emailAddress"

    rows = await owned_rows(runtime, user.id)
    assert [str(r.id) for r in rows] == [first["id"]]


async def test_the_same_login_under_another_address_is_duplicate_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    """One mailbox added as three addresses would be synced three times: the server and
    the username (compared without case) make the mailbox, whatever the address."""
    user = await new_user(company="Alias Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    login = own_mailbox(dovecot)

    async def add(client: GraphQLClient, address: str, **imap: str) -> dict[str, Any]:
        data = await client.execute(ADD_ACCOUNT, {"input": account_input(dovecot, address, **imap)})
        payload: dict[str, Any] = data["addMailAccount"]
        return payload

    first = await add(client, "ann@example.com", **login)
    assert first["userErrors"] == [], first

    for address, username in (
        ("sales@example.com", login["username"]),
        ("ann.smith@example.com", login["username"].upper()),
    ):
        payload = await add(client, address, **{**login, "username": username})
        assert payload["account"] is None
        [error] = payload["userErrors"]
        assert (error["code"], error["field"]) == ("DUPLICATE_ACCOUNT", "imap.username")
        assert "ann@example.com" in error["message"]
    assert [str(r.id) for r in await owned_rows(runtime, user.id)] == [first["account"]["id"]]

    # Another user may connect the same mailbox (their own view of it).
    other = await new_user(company="Alias Co", plan=Plan.POWER)
    theirs = await add(gql.as_user(other.token), "sales@example.com", **login)
    assert theirs["userErrors"] == [], theirs


async def test_different_users_may_each_connect_the_same_address(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    alice = await new_user(company="Same Co", plan=Plan.PROFESSIONAL)
    bob = await new_user(company="Same Co")
    carol = await new_user(company="Other Co", plan=Plan.PROFESSIONAL)

    accounts = [
        await add_account(gql.as_user(alice.token), dovecot, "team@example.com"),
        await add_account(gql.as_user(bob.token), dovecot, "TEAM@example.com"),
        await add_account(gql.as_user(carol.token), dovecot, "team@example.com"),
    ]

    assert len({a["id"] for a in accounts}) == 3
    for user, account in zip((alice, bob, carol), accounts, strict=True):
        [row] = await owned_rows(runtime, user.id)
        assert str(row.id) == account["id"]
        assert row.email_address.lower() == "team@example.com"
        assert account["isDefault"] is True


async def test_concurrent_adds_cannot_exceed_the_limit(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Race Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    addresses = [f"race{i}@example.com" for i in range(5)]

    payloads = await asyncio.gather(*(try_add_account(client, dovecot, a) for a in addresses))

    accepted = [p["account"] for p in payloads if p["account"] is not None]
    refused = [p for p in payloads if p["account"] is None]
    assert len(accepted) == 2
    assert [error_codes(p) for p in refused] == [["PLAN_LIMIT_REACHED"]] * 3
    rows = await owned_rows(runtime, user.id)
    assert sorted(str(r.id) for r in rows) == sorted(a["id"] for a in accepted)
    # Exactly one of them is the default, and it is one that was stored.
    assert [a["isDefault"] for a in accepted].count(True) == 1
    assert str(await default_account_id(runtime, user.id)) in {a["id"] for a in accepted}


async def test_concurrent_adds_of_one_address_store_it_once(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Race Dup Co", plan=Plan.ENTERPRISE)
    client = gql.as_user(user.token)

    payloads = await asyncio.gather(
        *(try_add_account(client, dovecot, "same@example.com") for _ in range(4))
    )

    accepted = [p for p in payloads if p["account"] is not None]
    assert len(accepted) == 1
    assert (
        sorted(error_codes(p)[0] for p in payloads if p["account"] is None)
        == ["DUPLICATE_ACCOUNT"] * 3
    )
    assert len(await owned_rows(runtime, user.id)) == 1


# -- plan changes ---------------------------------------------------------------------------


async def test_downgrade_pauses_the_newest_accounts_and_deletes_nothing(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Shrink Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    oldest, middle, newest = await add_accounts(client, dovecot, 3)
    folders_before = {a["id"]: await count_folders(runtime, a["id"]) for a in (oldest, newest)}

    changed = await set_plan(runtime, "Shrink Co", Plan.PROFESSIONAL)

    assert [str(a.id) for a in changed] == [newest["id"]]
    rows = {str(r.id): r for r in await owned_rows(runtime, user.id)}
    assert set(rows) == {oldest["id"], middle["id"], newest["id"]}
    assert rows[oldest["id"]].status is AccountStatus.READY
    assert rows[middle["id"]].status is AccountStatus.READY
    assert rows[newest["id"]].status is AccountStatus.PAUSED
    assert rows[newest["id"]].paused_reason is PauseReason.PLAN
    for account_id, count in folders_before.items():
        assert await count_folders(runtime, account_id) == count > 0
    assert await _api_statuses(client) == {
        oldest["id"]: "READY",
        middle["id"]: "READY",
        newest["id"]: "PAUSED",
    }
    me = (await client.execute(ME))["me"]
    assert me["company"] == {"plan": "PROFESSIONAL", "accountLimit": 2}
    assert me["defaultAccount"]["id"] == oldest["id"]


async def test_upgrade_resumes_the_accounts_the_plan_paused(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Bounce Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    oldest, middle, newest = await add_accounts(client, dovecot, 3)

    await set_plan(runtime, "Bounce Co", Plan.ADVANCED)
    assert await _api_statuses(client) == {
        oldest["id"]: "READY",
        middle["id"]: "PAUSED",
        newest["id"]: "PAUSED",
    }

    await set_plan(runtime, "Bounce Co", Plan.POWER)

    assert await _statuses(runtime, user.id) == [AccountStatus.READY] * 3
    assert [r.paused_reason for r in await owned_rows(runtime, user.id)] == [None] * 3
    assert set((await _api_statuses(client)).values()) == {"READY"}


async def test_downgrade_applies_to_every_user_of_the_company_only(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    alice = await new_user(company="Many Co", plan=Plan.POWER)
    bob = await new_user(company="Many Co")
    outsider = await new_user(company="Elsewhere Co", plan=Plan.POWER)
    for user in (alice, bob, outsider):
        await add_accounts(gql.as_user(user.token), dovecot, 2)

    await set_plan(runtime, "Many Co", Plan.ADVANCED)

    for user in (alice, bob):
        assert await _statuses(runtime, user.id) == [AccountStatus.READY, AccountStatus.PAUSED]
    assert await _statuses(runtime, outsider.id) == [AccountStatus.READY] * 2


async def test_essential_pauses_every_account_and_upgrade_resumes_them(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    alice = await new_user(company="Gone Co", plan=Plan.PROFESSIONAL)
    bob = await new_user(company="Gone Co")
    await add_accounts(gql.as_user(alice.token), dovecot, 2)
    await add_accounts(gql.as_user(bob.token), dovecot, 1)

    await set_plan(runtime, "Gone Co", Plan.ESSENTIAL)

    assert await count_accounts(runtime) == 3
    assert await _statuses(runtime, alice.id) == [AccountStatus.PAUSED] * 2
    assert await _statuses(runtime, bob.id) == [AccountStatus.PAUSED]
    payload = await try_add_account(gql.as_user(bob.token), dovecot)
    assert error_codes(payload) == ["SYNC_NOT_IN_PLAN"]
    assert await count_accounts(runtime) == 3

    await set_plan(runtime, "Gone Co", Plan.PROFESSIONAL)

    assert await _statuses(runtime, alice.id) == [AccountStatus.READY] * 2
    assert await _statuses(runtime, bob.id) == [AccountStatus.READY]


async def test_an_account_paused_by_the_plan_still_counts_toward_the_limit(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Full Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    await add_accounts(client, dovecot, 3)
    await set_plan(runtime, "Full Co", Plan.PROFESSIONAL)

    payload = await try_add_account(client, dovecot, "fourth@example.com")

    assert payload["account"] is None
    assert error_codes(payload) == ["PLAN_LIMIT_REACHED"]
    rows = await owned_rows(runtime, user.id)
    assert len(rows) == 3
    assert "fourth@example.com" not in {r.email_address for r in rows}


async def test_removing_an_account_while_over_the_limit_resumes_a_paused_one(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Trim Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    oldest, middle, newest = await add_accounts(client, dovecot, 3)
    await set_plan(runtime, "Trim Co", Plan.PROFESSIONAL)
    assert await _statuses(runtime, user.id) == [
        AccountStatus.READY,
        AccountStatus.READY,
        AccountStatus.PAUSED,
    ]

    data = await client.execute(REMOVE_ACCOUNT, {"id": oldest["id"]})

    assert data["removeMailAccount"]["userErrors"] == []
    rows = await owned_rows(runtime, user.id)
    assert [str(r.id) for r in rows] == [middle["id"], newest["id"]]
    assert [r.status for r in rows] == [AccountStatus.READY, AccountStatus.READY]
    assert rows[1].paused_reason is None
    assert await _api_statuses(client) == {middle["id"]: "READY", newest["id"]: "READY"}


async def test_removing_an_account_never_leaves_more_working_accounts_than_the_limit(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Still Over Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    oldest, middle, newest = await add_accounts(client, dovecot, 3)
    await set_plan(runtime, "Still Over Co", Plan.ADVANCED)

    data = await client.execute(REMOVE_ACCOUNT, {"id": newest["id"]})

    assert data["removeMailAccount"]["userErrors"] == []
    assert await _api_statuses(client) == {oldest["id"]: "READY", middle["id"]: "PAUSED"}

    data = await client.execute(REMOVE_ACCOUNT, {"id": oldest["id"]})

    assert data["removeMailAccount"]["userErrors"] == []
    assert await _api_statuses(client) == {middle["id"]: "READY"}
