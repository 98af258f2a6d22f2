"""Keyset pages: every message exactly once, in order, while new mail keeps arriving."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import BASE_DATE, INBOX, seed_account, seed_messages


async def test_walking_pages_while_mail_arrives_has_no_gaps_or_repeats(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    accounts = [await seed_account(runtime, user) for _ in range(3)]
    rng = random.Random(7)
    expected: list[tuple[str, int]] = []  # (date, id) of the mail there before the first page
    for account in accounts:
        # Many share a timestamp to the second, so the id must break ties in the cursor.
        rows = [
            {"date": BASE_DATE - timedelta(seconds=rng.randrange(40)), "subject": "old"}
            for _ in range(45)
        ]
        ids = await seed_messages(runtime, account, rows)
        expected += [(r["date"].isoformat(), i) for r, i in zip(rows, ids, strict=True)]
    expected.sort(reverse=True)
    client = gql.as_user(user.token)

    seen: list[tuple[str, int]] = []
    after: str | None = None
    pages = 0
    while True:
        page: dict[str, Any] = (await client.execute(INBOX, {"first": 7, "after": after}))["inbox"]
        # Between pages: new mail in every account (newer than anything listed so far).
        for account in accounts:
            await seed_messages(
                runtime, account, [{"date": BASE_DATE + timedelta(hours=pages + 1)}]
            )
        seen += [
            (e["node"]["date"], runtime.message_ids.decode(e["node"]["id"]))
            for e in page["edges"]
            if e["node"]["subject"] == "old"
        ]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert [i for _, i in seen] == [i for _, i in expected]
    assert len(set(seen)) == len(seen) == 135
    assert pages == 20  # 135 old messages in pages of 7; new mail never enters a later page

    # Starting again from the top shows the new mail first.
    first = (await client.execute(INBOX, {"first": 3}))["inbox"]["edges"]
    assert all(e["node"]["subject"] != "old" for e in first)


async def test_each_edge_cursor_resumes_right_after_that_edge(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(runtime, account, [{} for _ in range(10)])
    client = gql.as_user(user.token)
    edges = (await client.execute(INBOX, {"first": 10}))["inbox"]["edges"]
    ids = [e["node"]["id"] for e in edges]
    for position, edge in enumerate(edges):
        rest = (await client.execute(INBOX, {"first": 10, "after": edge["cursor"]}))["inbox"]
        assert [e["node"]["id"] for e in rest["edges"]] == ids[position + 1 :]
        assert rest["pageInfo"]["hasNextPage"] is False
        if position == len(edges) - 1:
            assert rest["pageInfo"]["endCursor"] is None
