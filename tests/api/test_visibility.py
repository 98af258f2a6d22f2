"""Who may see and change an account: the owner, teammates (SHARED, read-only), no one else."""

from __future__ import annotations

from typing import Any

from core.models import Plan, Sharing
from core.runtime import Runtime
from tests.support.accounts import (
    MAIL_ACCOUNT,
    MAIL_ACCOUNTS,
    RECONNECT_ACCOUNT,
    REMOVE_ACCOUNT,
    SET_DEFAULT,
    UPDATE_ACCOUNT,
    NewUser,
    account_row,
    add_account,
    add_accounts,
    default_account_id,
    error_codes,
    owned_rows,
    snapshot,
)
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

OWNER_VIEW = """
query Account($id: ID!) {
  mailAccount(id: $id) {
    id
    owner { email mailAccounts { id } defaultAccount { id } }
  }
}
"""


async def _share(client: GraphQLClient, account_id: str) -> None:
    data = await client.execute(
        UPDATE_ACCOUNT, {"input": {"accountId": account_id, "sharing": "SHARED"}}
    )
    assert data["updateMailAccount"]["userErrors"] == []
    assert data["updateMailAccount"]["account"]["sharing"] == "SHARED"


async def _every_change(client: GraphQLClient, account_id: str) -> dict[str, dict[str, Any]]:
    """Try every change a user can ask for on ``account_id``; each mutation's payload."""
    update = await client.execute(
        UPDATE_ACCOUNT,
        {"input": {"accountId": account_id, "displayName": "Hijacked", "sharing": "PRIVATE"}},
    )
    reconnect = await client.execute(
        RECONNECT_ACCOUNT, {"input": {"accountId": account_id, "imapPassword": "demopass"}}
    )
    remove = await client.execute(REMOVE_ACCOUNT, {"id": account_id})
    set_default = await client.execute(SET_DEFAULT, {"id": account_id})
    return {
        "update": update["updateMailAccount"],
        "reconnect": reconnect["reconnectMailAccount"],
        "remove": remove["removeMailAccount"],
        "set_default": set_default["setDefaultAccount"],
    }


async def _assert_invisible_and_unchangeable(
    client: GraphQLClient, viewer: TestUser, account: dict[str, Any], runtime: Runtime
) -> None:
    before = snapshot(await account_row(runtime, account["id"]))
    viewer_default = await default_account_id(runtime, viewer.id)

    data = await client.execute(MAIL_ACCOUNT, {"id": account["id"]})
    assert data["mailAccount"] is None

    payloads = await _every_change(client, account["id"])
    assert {name: error_codes(p) for name, p in payloads.items()} == {
        "update": ["NOT_FOUND"],
        "reconnect": ["NOT_FOUND"],
        "remove": ["NOT_FOUND"],
        "set_default": ["NOT_FOUND"],
    }
    assert payloads["update"]["account"] is None
    assert payloads["reconnect"]["account"] is None
    assert payloads["remove"]["removedAccountId"] is None
    assert payloads["set_default"]["user"] is None
    assert snapshot(await account_row(runtime, account["id"])) == before
    assert await default_account_id(runtime, viewer.id) == viewer_default


async def test_another_companys_user_cannot_see_or_change_an_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    owner = await new_user(company="Owner Co", plan=Plan.PROFESSIONAL)
    outsider = await new_user(company="Outsider Co", plan=Plan.PROFESSIONAL)
    owner_client = gql.as_user(owner.token)
    private = await add_account(owner_client, dovecot, displayName="Private box")
    shared = await add_account(owner_client, dovecot, displayName="Team box")
    await _share(owner_client, shared["id"])
    outsider_client = gql.as_user(outsider.token)
    await add_account(outsider_client, dovecot)

    # Even a SHARED account is for the owner's company only.
    for account in (private, shared):
        await _assert_invisible_and_unchangeable(outsider_client, outsider, account, runtime)
    assert len(await owned_rows(runtime, owner.id)) == 2


async def test_a_teammate_cannot_see_or_change_a_private_account(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    owner = await new_user(company="Private Co", plan=Plan.PROFESSIONAL)
    teammate = await new_user(company="Private Co")
    private = await add_account(gql.as_user(owner.token), dovecot, displayName="Mine")
    teammate_client = gql.as_user(teammate.token)
    await add_account(teammate_client, dovecot)

    await _assert_invisible_and_unchangeable(teammate_client, teammate, private, runtime)
    assert [str(r.id) for r in await owned_rows(runtime, owner.id)] == [private["id"]]


async def test_a_teammate_reads_a_shared_account_but_cannot_change_it(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    owner = await new_user(company="Shared Co", plan=Plan.PROFESSIONAL)
    teammate = await new_user(company="Shared Co")
    owner_client = gql.as_user(owner.token)
    shared = await add_account(owner_client, dovecot, displayName="Sales team")
    await _share(owner_client, shared["id"])
    teammate_client = gql.as_user(teammate.token)
    teammate_own = await add_account(teammate_client, dovecot)
    before = snapshot(await account_row(runtime, shared["id"]))

    data = await teammate_client.execute(MAIL_ACCOUNT, {"id": shared["id"]})
    read = data["mailAccount"]
    assert read["id"] == shared["id"]
    assert read["emailAddress"] == shared["emailAddress"]
    assert read["displayName"] == "Sales team"
    assert read["sharing"] == "SHARED"
    assert read["owner"] == {"email": owner.email}

    payloads = await _every_change(teammate_client, shared["id"])
    assert {name: error_codes(p) for name, p in payloads.items()} == {
        "update": ["FORBIDDEN"],
        "reconnect": ["FORBIDDEN"],
        "remove": ["FORBIDDEN"],
        "set_default": ["FORBIDDEN"],
    }
    after = await account_row(runtime, shared["id"])
    assert snapshot(after) == before
    assert after is not None
    assert after.sharing is Sharing.SHARED
    assert after.display_name == "Sales team"
    assert str(await default_account_id(runtime, teammate.id)) == teammate_own["id"]
    assert str(await default_account_id(runtime, owner.id)) == shared["id"]


async def test_making_an_account_private_again_hides_it_from_teammates(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    owner = await new_user(company="Unshare Co", plan=Plan.PROFESSIONAL)
    teammate = await new_user(company="Unshare Co")
    owner_client = gql.as_user(owner.token)
    teammate_client = gql.as_user(teammate.token)
    account = await add_account(owner_client, dovecot)
    await _share(owner_client, account["id"])
    assert (await teammate_client.execute(MAIL_ACCOUNT, {"id": account["id"]}))["mailAccount"]

    data = await owner_client.execute(
        UPDATE_ACCOUNT, {"input": {"accountId": account["id"], "sharing": "PRIVATE"}}
    )

    assert data["updateMailAccount"]["userErrors"] == []
    row = await account_row(runtime, account["id"])
    assert row is not None
    assert row.sharing is Sharing.PRIVATE
    data = await teammate_client.execute(MAIL_ACCOUNT, {"id": account["id"]})
    assert data["mailAccount"] is None


async def test_a_shared_accounts_owner_shows_teammates_only_shared_accounts(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    """Reading a shared account's owner must not reveal the owner's private accounts."""
    owner = await new_user(company="Owner View Co", plan=Plan.POWER)
    teammate = await new_user(company="Owner View Co")
    owner_client = gql.as_user(owner.token)
    private_default, shared, private_other = await add_accounts(owner_client, dovecot, 3)
    await _share(owner_client, shared["id"])
    assert str(await default_account_id(runtime, owner.id)) == private_default["id"]

    data = await gql.as_user(teammate.token).execute(OWNER_VIEW, {"id": shared["id"]})

    owner_view = data["mailAccount"]["owner"]
    assert owner_view["email"] == owner.email
    assert owner_view["mailAccounts"] == [{"id": shared["id"]}]
    assert owner_view["defaultAccount"] is None  # the default is private
    assert private_other["id"] not in str(data)


async def test_mail_accounts_lists_only_the_viewers_own_accounts(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, runtime: Runtime
) -> None:
    alice = await new_user(company="List Co", plan=Plan.PROFESSIONAL)
    bob = await new_user(company="List Co")
    carol = await new_user(company="Other List Co", plan=Plan.PROFESSIONAL)
    dave = await new_user(company="List Co")
    alice_client = gql.as_user(alice.token)
    alice_shared, alice_private = await add_accounts(alice_client, dovecot, 2)
    await _share(alice_client, alice_shared["id"])
    bob_accounts = await add_accounts(gql.as_user(bob.token), dovecot, 2)
    carol_accounts = await add_accounts(gql.as_user(carol.token), dovecot, 1)

    lists = {
        name: {a["id"] for a in (await gql.as_user(u.token).execute(MAIL_ACCOUNTS))["mailAccounts"]}
        for name, u in (("alice", alice), ("bob", bob), ("carol", carol), ("dave", dave))
    }

    assert lists == {
        "alice": {alice_shared["id"], alice_private["id"]},
        "bob": {a["id"] for a in bob_accounts},
        "carol": {a["id"] for a in carol_accounts},
        "dave": set(),
    }
    assert {str(r.id) for r in await owned_rows(runtime, alice.id)} == lists["alice"]
