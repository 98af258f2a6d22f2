"""The default account: set on the first add, switched and cleared by the user only."""

from __future__ import annotations

import uuid

from core.models import Plan
from core.runtime import Runtime
from tests.support.accounts import (
    MAIL_ACCOUNTS,
    ME,
    REMOVE_ACCOUNT,
    SET_DEFAULT,
    NewUser,
    add_account,
    add_accounts,
    default_account_id,
    error_codes,
)
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer


async def _is_default_flags(client: GraphQLClient) -> dict[str, bool]:
    data = await client.execute(MAIL_ACCOUNTS)
    return {a["id"]: a["isDefault"] for a in data["mailAccounts"]}


async def _me_default(client: GraphQLClient) -> str | None:
    default = (await client.execute(ME))["me"]["defaultAccount"]
    return None if default is None else str(default["id"])


async def test_first_account_becomes_the_default_and_the_second_does_not(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Default Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)

    first = await add_account(client, dovecot)
    second = await add_account(client, dovecot)

    assert first["isDefault"] is True
    assert second["isDefault"] is False
    assert await default_account_id(runtime, user.id) == uuid.UUID(first["id"])
    assert await _me_default(client) == first["id"]
    assert await _is_default_flags(client) == {first["id"]: True, second["id"]: False}


async def test_set_default_account_switches_it(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Switch Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    first, second = await add_accounts(client, dovecot, 2)

    data = await client.execute(SET_DEFAULT, {"id": second["id"]})

    payload = data["setDefaultAccount"]
    assert payload["userErrors"] == []
    assert payload["user"]["defaultAccount"]["id"] == second["id"]
    assert payload["user"]["defaultAccount"]["isDefault"] is True
    assert await default_account_id(runtime, user.id) == uuid.UUID(second["id"])
    assert await _me_default(client) == second["id"]
    assert await _is_default_flags(client) == {first["id"]: False, second["id"]: True}


async def test_set_default_account_null_clears_it(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Clear Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    first, second = await add_accounts(client, dovecot, 2)

    data = await client.execute(SET_DEFAULT, {"id": None})

    payload = data["setDefaultAccount"]
    assert payload["userErrors"] == []
    assert payload["user"]["defaultAccount"] is None
    assert await default_account_id(runtime, user.id) is None
    assert await _me_default(client) is None
    assert await _is_default_flags(client) == {first["id"]: False, second["id"]: False}


async def test_a_cleared_default_is_not_silently_set_by_the_next_add(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    """Only the user's first account becomes the default on its own; the user chose none."""
    user = await new_user(company="No Default Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    first = await add_account(client, dovecot)
    await client.execute(SET_DEFAULT, {"id": None})

    second = await add_account(client, dovecot)

    assert second["isDefault"] is False
    assert await default_account_id(runtime, user.id) is None
    assert await _is_default_flags(client) == {first["id"]: False, second["id"]: False}


async def test_removing_the_default_account_leaves_no_default(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Remove Default Co", plan=Plan.POWER)
    client = gql.as_user(user.token)
    first, second, third = await add_accounts(client, dovecot, 3)
    assert await default_account_id(runtime, user.id) == uuid.UUID(first["id"])

    data = await client.execute(REMOVE_ACCOUNT, {"id": first["id"]})

    assert data["removeMailAccount"]["userErrors"] == []
    assert await default_account_id(runtime, user.id) is None
    assert await _me_default(client) is None
    assert await _is_default_flags(client) == {second["id"]: False, third["id"]: False}


async def test_removing_another_account_keeps_the_default(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Keep Default Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    first, second = await add_accounts(client, dovecot, 2)
    await client.execute(SET_DEFAULT, {"id": second["id"]})

    data = await client.execute(REMOVE_ACCOUNT, {"id": first["id"]})

    assert data["removeMailAccount"]["userErrors"] == []
    assert await default_account_id(runtime, user.id) == uuid.UUID(second["id"])
    assert await _me_default(client) == second["id"]


async def test_another_users_account_cannot_be_the_default(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Mine Co", plan=Plan.PROFESSIONAL)
    teammate = await new_user(company="Mine Co")
    stranger = await new_user(company="Theirs Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    own = await add_account(client, dovecot)
    teammates = await add_account(gql.as_user(teammate.token), dovecot)
    strangers = await add_account(gql.as_user(stranger.token), dovecot)

    for foreign in (teammates, strangers):
        data = await client.execute(SET_DEFAULT, {"id": foreign["id"]})
        payload = data["setDefaultAccount"]
        assert payload["user"] is None
        assert error_codes(payload) == ["NOT_FOUND"]

    assert await default_account_id(runtime, user.id) == uuid.UUID(own["id"])
    assert await default_account_id(runtime, teammate.id) == uuid.UUID(teammates["id"])
    assert await default_account_id(runtime, stranger.id) == uuid.UUID(strangers["id"])
    assert await _me_default(client) == own["id"]


async def test_malformed_or_unknown_id_is_not_found_and_keeps_the_default(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Typo Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    own = await add_account(client, dovecot)

    for bad_id in ("not-an-id", "", str(uuid.uuid4())):
        data = await client.execute(SET_DEFAULT, {"id": bad_id})
        payload = data["setDefaultAccount"]
        assert payload["user"] is None
        assert error_codes(payload) == ["NOT_FOUND"]

    assert await default_account_id(runtime, user.id) == uuid.UUID(own["id"])
    assert await _me_default(client) == own["id"]
