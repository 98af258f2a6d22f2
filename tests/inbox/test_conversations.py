"""conversations: one row per thread the viewer may read, newest first by its latest
matching message, with counts, senders, accounts and flags; the inbox's filters and
keyset pages; a page costs the same statements whatever its size."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from core.models import FolderRole, Sharing
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import BASE_DATE, seed_account, seed_messages
from tests.support.statements import recorded_statements

CONVERSATIONS = """
query($filter: InboxFilter, $first: Int, $after: String) {
  conversations(filter: $filter, first: $first, after: $after) {
    edges {
      cursor
      node {
        id messageCount unreadCount isFlagged hasAttachments
        participants { name address }
        accounts { id emailAddress }
        latestMessage { id subject date account { id } folder { role } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""


def at(minutes: int) -> Any:
    return BASE_DATE + timedelta(minutes=minutes)


def sender(name: str) -> dict[str, str]:
    return {"from_name": name.capitalize(), "from_address": f"{name}@example.com"}


async def test_threads_across_own_and_shared_accounts_with_their_summaries(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    stranger = await new_user(company="Globex")
    a = await seed_account(runtime, viewer)
    b = await seed_account(runtime, viewer)
    shared = await seed_account(runtime, teammate, sharing=Sharing.SHARED)
    private = await seed_account(runtime, teammate)
    foreign = await seed_account(runtime, stranger, sharing=Sharing.SHARED)
    deal, lunch, news = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    # "deal": asked in A, answered from A's Sent, followed up in B (also copied into B).
    await seed_messages(
        runtime,
        a,
        [
            {
                "thread_id": deal,
                "date": at(1),
                "subject": "Deal",
                "message_id": "deal-1",
                **sender("ann"),
            }
        ],
    )
    await seed_messages(
        runtime,
        a,
        [
            {
                "thread_id": deal,
                "date": at(2),
                "subject": "Re: Deal (sent)",
                "is_read": True,
                **sender("viewer"),
            }
        ],
        role=FolderRole.SENT,
    )
    await seed_messages(
        runtime,
        b,
        [
            {
                "thread_id": deal,
                "date": at(1),
                "subject": "Deal",
                "message_id": "deal-1",
                **sender("ann"),
            },
            {
                "thread_id": deal,
                "date": at(3),
                "subject": "Re: Deal",
                "is_read": True,
                "is_flagged": True,
                "has_attachments": True,
                **sender("carl"),
            },
        ],
    )
    # "lunch": one read message in A, and a later one marked \Deleted (not shown).
    await seed_messages(
        runtime,
        a,
        [
            {"thread_id": lunch, "date": at(4), "subject": "Lunch friday", "is_read": True},
            {"thread_id": lunch, "date": at(9), "subject": "Deleted", "is_deleted": True},
        ],
    )
    # "news": the teammate's shared account, newest of all; their private one and another
    # company's shared one are never seen.
    await seed_messages(
        runtime,
        shared,
        [
            {"thread_id": news, "date": at(5), "subject": "News", **sender("dora")},
            {"thread_id": news, "date": at(6), "subject": "Re: News", **sender("erik")},
        ],
    )
    await seed_messages(runtime, private, [{"date": at(20)}])
    await seed_messages(runtime, foreign, [{"date": at(21)}])

    client = gql.as_user(viewer.token)
    data = (await client.execute(CONVERSATIONS))["conversations"]
    nodes = [e["node"] for e in data["edges"]]
    assert [n["id"] for n in nodes] == [str(news), str(lunch), str(deal)]
    assert data["pageInfo"]["hasNextPage"] is False
    news_node, lunch_node, deal_node = nodes
    assert deal_node["latestMessage"]["subject"] == "Re: Deal"
    assert deal_node["latestMessage"]["account"]["id"] == str(b.id)
    assert (deal_node["messageCount"], deal_node["unreadCount"]) == (3, 1)
    assert (deal_node["isFlagged"], deal_node["hasAttachments"]) == (True, True)
    assert [p["address"] for p in deal_node["participants"]] == [
        "ann@example.com",
        "viewer@example.com",
        "carl@example.com",
    ]
    assert {x["id"] for x in deal_node["accounts"]} == {str(a.id), str(b.id)}
    assert (lunch_node["messageCount"], lunch_node["unreadCount"]) == (1, 0)
    assert lunch_node["latestMessage"]["subject"] == "Lunch friday"
    assert (news_node["messageCount"], news_node["unreadCount"]) == (2, 2)
    assert [x["id"] for x in news_node["accounts"]] == [str(shared.id)]
    assert not (news_node["isFlagged"] or news_node["hasAttachments"])

    async def ids(filter: dict[str, Any]) -> list[tuple[str, str]]:
        found = await client.execute(CONVERSATIONS, {"filter": filter})
        return [
            (e["node"]["id"], e["node"]["latestMessage"]["subject"])
            for e in found["conversations"]["edges"]
        ]

    # Listed at their latest message that matches: unread "deal" is its first message.
    assert await ids({"unread": True}) == [(str(news), "Re: News"), (str(deal), "Deal")]
    assert await ids({"accountIds": [str(b.id)]}) == [(str(deal), "Re: Deal")]
    only_b = await client.execute(CONVERSATIONS, {"filter": {"accountIds": [str(b.id)]}})
    assert only_b["conversations"]["edges"][0]["node"]["messageCount"] == 2
    assert await ids({"search": "lunch"}) == [(str(lunch), "Lunch friday")]
    assert await ids({"folderRole": "SENT"}) == [(str(deal), "Re: Deal (sent)")]
    assert await ids({"accountIds": [str(private.id), str(foreign.id)]}) == []

    # Keyset pages: one at a time, the same threads in the same order.
    walked, after = [], None
    while True:
        page = (await client.execute(CONVERSATIONS, {"first": 1, "after": after}))["conversations"]
        walked += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == [str(news), str(lunch), str(deal)]


async def test_a_page_costs_the_same_statements_whatever_its_size(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    accounts = [await seed_account(runtime, viewer) for _ in range(2)]
    accounts.append(await seed_account(runtime, teammate, sharing=Sharing.SHARED))
    for account in accounts:
        threads = [uuid.uuid4() for _ in range(30)]
        await seed_messages(runtime, account, [{"thread_id": threads[i % 30]} for i in range(60)])
    client = gql.as_user(viewer.token)
    await client.execute(CONVERSATIONS, {"first": 1})  # the token's first use is recorded
    counts = {}
    for first in (5, 50):
        with recorded_statements(runtime.engine) as statements:
            data = await client.execute(CONVERSATIONS, {"first": first})
        assert len(data["conversations"]["edges"]) == first
        assert all(e["node"]["messageCount"] == 2 for e in data["conversations"]["edges"])
        counts[first] = len(statements)
    # auth, scope (with the accounts and folders), the page, the summaries
    assert counts[5] == counts[50] <= 4, counts
