"""updateMailAccount (display name, sharing) and removeMailAccount, as the owner."""

from __future__ import annotations

import uuid
from typing import Any

from core.models import Plan, Sharing
from core.runtime import Runtime
from tests.support.accounts import (
    MAIL_ACCOUNT,
    MAIL_ACCOUNTS,
    REMOVE_ACCOUNT,
    UPDATE_ACCOUNT,
    NewUser,
    account_row,
    add_account,
    add_accounts,
    count_folders,
    error_codes,
    owned_rows,
    snapshot,
)
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer


async def _update(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await client.execute(UPDATE_ACCOUNT, {"input": fields})
    payload: dict[str, Any] = data["updateMailAccount"]
    return payload


async def _stored_display_name(runtime: Runtime, account_id: str) -> str | None:
    row = await account_row(runtime, account_id)
    assert row is not None
    return row.display_name


async def _stored_sharing(runtime: Runtime, account_id: str) -> Sharing:
    row = await account_row(runtime, account_id)
    assert row is not None
    return row.sharing


# -- updateMailAccount ----------------------------------------------------------------------


async def test_display_name_is_set_cleared_by_null_and_kept_when_omitted(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap)
    assert account["displayName"] is None
    account_id = account["id"]

    payload = await _update(client, accountId=account_id, displayName="Sales desk")
    assert payload["userErrors"] == []
    assert payload["account"]["displayName"] == "Sales desk"
    assert await _stored_display_name(runtime, account_id) == "Sales desk"

    payload = await _update(client, accountId=account_id, sharing="SHARED")
    assert payload["userErrors"] == []
    assert payload["account"]["displayName"] == "Sales desk"
    assert await _stored_display_name(runtime, account_id) == "Sales desk"

    payload = await _update(client, accountId=account_id, displayName=None)
    assert payload["userErrors"] == []
    assert payload["account"]["displayName"] is None
    assert await _stored_display_name(runtime, account_id) is None
    data = await client.execute(MAIL_ACCOUNT, {"id": account_id})
    assert data["mailAccount"]["displayName"] is None


async def test_sharing_switches_between_private_and_shared(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap, displayName="Kept")
    account_id = account["id"]
    assert account["sharing"] == "PRIVATE"

    payload = await _update(client, accountId=account_id, sharing="SHARED")
    assert payload["userErrors"] == []
    assert payload["account"]["sharing"] == "SHARED"
    assert await _stored_sharing(runtime, account_id) is Sharing.SHARED

    payload = await _update(client, accountId=account_id, sharing="PRIVATE")
    assert payload["userErrors"] == []
    assert payload["account"]["sharing"] == "PRIVATE"
    assert await _stored_sharing(runtime, account_id) is Sharing.PRIVATE
    assert await _stored_display_name(runtime, account_id) == "Kept"


async def test_too_long_display_name_is_invalid_input_and_changes_nothing(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap, displayName="Original")
    before = snapshot(await account_row(runtime, account["id"]))

    payload = await _update(
        client, accountId=account["id"], displayName="x" * 201, sharing="SHARED"
    )

    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID_INPUT"
    assert error["field"] == "displayName"
    assert snapshot(await account_row(runtime, account["id"])) == before
    data = await client.execute(MAIL_ACCOUNT, {"id": account["id"]})
    assert data["mailAccount"]["displayName"] == "Original"
    assert data["mailAccount"]["sharing"] == "PRIVATE"


async def test_display_name_of_exactly_200_characters_is_accepted(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap)

    payload = await _update(client, accountId=account["id"], displayName="y" * 200)

    assert payload["userErrors"] == []
    assert await _stored_display_name(runtime, account["id"]) == "y" * 200


async def test_updating_an_unknown_account_is_not_found(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap, displayName="Untouched")

    for bad_id in (str(uuid.uuid4()), "garbage"):
        payload = await _update(client, accountId=bad_id, displayName="New")
        assert payload["account"] is None
        assert error_codes(payload) == ["NOT_FOUND"]
        assert (await client.execute(MAIL_ACCOUNT, {"id": bad_id}))["mailAccount"] is None

    assert await _stored_display_name(runtime, account["id"]) == "Untouched"


# -- removeMailAccount ----------------------------------------------------------------------


async def test_remove_deletes_the_account_and_its_folders(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Remove Co", plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    removed, kept = await add_accounts(client, dovecot, 2)
    kept_folders = await count_folders(runtime, kept["id"])
    assert await count_folders(runtime, removed["id"]) > 0

    data = await client.execute(REMOVE_ACCOUNT, {"id": removed["id"]})

    payload = data["removeMailAccount"]
    assert payload["userErrors"] == []
    assert payload["removedAccountId"] == removed["id"]
    assert await account_row(runtime, removed["id"]) is None
    assert await count_folders(runtime, removed["id"]) == 0
    assert [str(r.id) for r in await owned_rows(runtime, user.id)] == [kept["id"]]
    assert await count_folders(runtime, kept["id"]) == kept_folders > 0
    listed = (await client.execute(MAIL_ACCOUNTS))["mailAccounts"]
    assert [a["id"] for a in listed] == [kept["id"]]
    assert (await client.execute(MAIL_ACCOUNT, {"id": removed["id"]}))["mailAccount"] is None


async def test_removing_twice_is_not_found_the_second_time(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account = await add_account(client, pymap)
    first = (await client.execute(REMOVE_ACCOUNT, {"id": account["id"]}))["removeMailAccount"]
    assert first["removedAccountId"] == account["id"]

    second = (await client.execute(REMOVE_ACCOUNT, {"id": account["id"]}))["removeMailAccount"]

    assert second["removedAccountId"] is None
    assert error_codes(second) == ["NOT_FOUND"]
    assert await owned_rows(runtime, user.id) == []


async def test_a_removed_account_frees_its_place_under_the_limit(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user(company="Swap Co", plan=Plan.ADVANCED)
    client = gql.as_user(user.token)
    old = await add_account(client, pymap, "old@example.com")
    await client.execute(REMOVE_ACCOUNT, {"id": old["id"]})

    new = await add_account(client, pymap, "old@example.com")

    [row] = await owned_rows(runtime, user.id)
    assert str(row.id) == new["id"] != old["id"]
    assert row.email_address == "old@example.com"
