"""The inbox listing: order, filters, cursors, limits, counts and one copy per message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.models import FolderRole, Sharing
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import (
    BASE_DATE,
    INBOX,
    INBOX_WITH_COUNT,
    MESSAGE,
    api_id,
    seed_account,
    seed_messages,
)


def subjects(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["subject"] for edge in data["inbox"]["edges"]]


def at(minutes: int) -> dict[str, Any]:
    return {"date": BASE_DATE + timedelta(minutes=minutes)}


async def test_all_accounts_newest_first_then_one_account(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    work = await seed_account(runtime, user, address="work@example.com")
    home = await seed_account(runtime, user, address="home@example.com")
    await seed_messages(runtime, work, [{"subject": "w1", **at(1)}, {"subject": "w3", **at(3)}])
    await seed_messages(runtime, home, [{"subject": "h2", **at(2)}, {"subject": "h4", **at(4)}])
    client = gql.as_user(user.token)

    everything = await client.execute(INBOX, {})
    assert subjects(everything) == ["h4", "w3", "h2", "w1"]
    addresses = [e["node"]["account"]["emailAddress"] for e in everything["inbox"]["edges"]]
    assert addresses == ["home@example.com", "work@example.com"] * 2
    assert {e["node"]["folder"]["role"] for e in everything["inbox"]["edges"]} == {"INBOX"}

    only_work = await client.execute(INBOX, {"filter": {"accountIds": [str(work.id)]}})
    assert subjects(only_work) == ["w3", "w1"]


async def test_folder_role_unread_and_thread_filters(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    thread = "7b4c2c1e-94c3-4a6d-9d5b-2f1e0c9a8d11"
    await seed_messages(
        runtime,
        account,
        [
            {"subject": "read", "is_read": True, "thread_id": thread, **at(1)},
            {"subject": "unread", "is_read": False, **at(2)},
        ],
    )
    await seed_messages(
        runtime,
        account,
        [{"subject": "my reply", "is_read": True, "thread_id": thread, **at(3)}],
        role=FolderRole.SENT,
    )
    client = gql.as_user(user.token)

    assert subjects(await client.execute(INBOX, {})) == ["unread", "read"]
    sent = await client.execute(INBOX, {"filter": {"folderRole": "SENT"}})
    assert subjects(sent) == ["my reply"]
    assert subjects(await client.execute(INBOX, {"filter": {"unread": True}})) == ["unread"]
    assert subjects(await client.execute(INBOX, {"filter": {"unread": False}})) == ["read"]
    in_thread = await client.execute(INBOX, {"filter": {"threadId": thread}})
    assert subjects(in_thread) == ["read"]
    unknown = await client.execute(INBOX, {"filter": {"threadId": "not-a-thread"}})
    assert subjects(unknown) == []
    archive = await client.execute(INBOX, {"filter": {"folderRole": "ARCHIVE"}})
    assert subjects(archive) == []


async def test_a_message_in_two_of_the_viewers_accounts_is_listed_once(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    sales = await seed_account(runtime, user, address="sales@example.com")
    me = await seed_account(runtime, user, address="me@example.com")
    shared = {"message_id": "<deal@customer.example>", "subject": "the deal", **at(5)}
    await seed_messages(
        runtime, sales, [{**shared, "is_read": True}, {"subject": "sales only", **at(1)}]
    )
    await seed_messages(runtime, me, [shared, {"subject": "mine only", **at(2)}])
    client = gql.as_user(user.token)

    everything = await client.execute(INBOX_WITH_COUNT, {})
    assert subjects(everything) == ["the deal", "mine only", "sales only"]
    assert everything["inbox"]["totalCount"] == 3

    for account in (sales, me):
        own = await client.execute(
            INBOX, {"filter": {"accountIds": [str(account.id)]}, "first": 10}
        )
        deal = [e["node"] for e in own["inbox"]["edges"] if e["node"]["subject"] == "the deal"]
        assert len(deal) == 1 and deal[0]["account"]["id"] == str(account.id)

    # Paging one at a time shows it once too, whichever copy a page boundary falls on.
    seen: list[str] = []
    after = None
    while True:
        page = await client.execute(INBOX, {"first": 1, "after": after})
        seen += subjects(page)
        if not page["inbox"]["pageInfo"]["hasNextPage"]:
            break
        after = page["inbox"]["pageInfo"]["endCursor"]
    assert seen == ["the deal", "mine only", "sales only"]

    # When only the unread copy matches the filter, that copy is the one shown.
    unread = await client.execute(INBOX, {"filter": {"unread": True}})
    assert subjects(unread) == ["the deal", "mine only", "sales only"]
    assert unread["inbox"]["edges"][0]["node"]["account"]["id"] == str(me.id)
    read = await client.execute(INBOX, {"filter": {"unread": False}})
    assert [e["node"]["account"]["id"] for e in read["inbox"]["edges"]] == [str(sales.id)]


async def test_the_viewers_own_copy_wins_over_a_teammates_shared_one(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    mine = await seed_account(runtime, viewer)
    theirs = await seed_account(runtime, teammate, sharing=Sharing.SHARED)
    deal = {"message_id": "<deal@customer.example>", "subject": "the deal"}
    [own_copy] = await seed_messages(runtime, mine, [{**deal, **at(5)}])
    # The teammate's copy is newer (and has a higher id), and still the viewer sees theirs.
    [their_copy] = await seed_messages(runtime, theirs, [{**deal, **at(6)}])
    client = gql.as_user(viewer.token)

    listed = (await client.execute(INBOX, {}))["inbox"]["edges"]
    assert [e["node"]["id"] for e in listed] == [api_id(runtime, own_copy)]
    thread = (await client.execute(MESSAGE, {"id": api_id(runtime, own_copy)}))["message"]["thread"]
    assert [m["id"] for m in thread] == [api_id(runtime, own_copy)]
    # The teammate sees their own copy.
    listed = (await gql.as_user(teammate.token).execute(INBOX, {}))["inbox"]["edges"]
    assert [e["node"]["id"] for e in listed] == [api_id(runtime, their_copy)]


async def test_total_count_page_size_cap_and_bad_arguments(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(runtime, account, [at(i) for i in range(120)])
    client = gql.as_user(user.token)

    capped = await client.execute(INBOX_WITH_COUNT, {"first": 1000})
    assert len(capped["inbox"]["edges"]) == 100
    assert capped["inbox"]["pageInfo"]["hasNextPage"] is True
    assert capped["inbox"]["totalCount"] == 120
    default = await client.execute(INBOX_WITH_COUNT, {})
    assert len(default["inbox"]["edges"]) == 50
    empty = await client.execute(INBOX_WITH_COUNT, {"first": 0})
    assert empty["inbox"]["edges"] == [] and empty["inbox"]["totalCount"] == 120

    for variables in (
        {"after": "garbage"},
        {"after": ""},
        {"after": "bTE6eDp5"},  # "m1:x:y"
        {"after": "bTI6MTox"},  # another version: "m2:1:1"
        {"first": -1},
        {"filter": {"search": "x" * 501}},
        {"filter": {"accountIds": [str(account.id)] * 101}},
    ):
        response = await client.post(INBOX, variables)
        assert response.status_code == 200, variables
        errors = response.json()["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["INVALID_INPUT"], variables


@pytest.mark.parametrize("query", [INBOX, INBOX_WITH_COUNT])
async def test_inbox_needs_a_signed_in_user(gql: GraphQLClient, query: str) -> None:
    response = await gql.post(query, {})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
