"""No N+1: a page costs the same number of SQL statements whatever its size."""

from __future__ import annotations

import asyncio

from api.metrics import refresh_gauges
from core.models import Sharing
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import seed_account, seed_messages
from tests.support.statements import recorded_statements

PAGE = """
query Page($first: Int) {
  inbox(first: $first) {
    edges {
      node {
        id subject date snippet isRead
        from { name address } to { name address } cc { address }
        account { id emailAddress status owner { id email } }
        folder { id name role unreadCount }
        threadId
        thread { id subject account { id } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

USAGE = """
query {
  syncUsage {
    user { id email }
    accountLimit
    accounts { id emailAddress status lastSyncedAt messageCount labels }
  }
}
"""


async def test_inbox_page_statements_do_not_grow_with_page_size(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    accounts = [await seed_account(runtime, viewer) for _ in range(3)]
    accounts.append(await seed_account(runtime, teammate, sharing=Sharing.SHARED))
    for account in accounts:
        await seed_messages(runtime, account, [{} for _ in range(20)])
    client = gql.as_user(viewer.token)

    await client.execute(PAGE, {"first": 1})  # the token's first use is recorded once
    counts = {}
    for first in (5, 50):
        with recorded_statements(runtime.engine) as statements:
            data = await client.execute(PAGE, {"first": first})
        assert len(data["inbox"]["edges"]) == first
        counts[first] = len(statements)
    # auth, scope (with the accounts and folders), page, then a batch each: owners, threads
    assert counts[5] == counts[50] <= 6, counts


async def test_sync_usage_statements_do_not_grow_with_the_company(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    counts = {}
    for size in (2, 6):
        company = f"Usage{size}"
        admin = await new_user(company=company, admin=True)
        for _ in range(size):
            member = await new_user(company=company)
            for _ in range(2):
                await seed_account(runtime, member)
        with recorded_statements(runtime.engine) as statements:
            data = await gql.as_user(admin.token).execute(USAGE)
        assert len(data["syncUsage"]) == size + 1
        assert all(
            len(row["accounts"]) == 2
            for row in data["syncUsage"]
            if row["user"]["id"] != str(admin.id)
        )
        counts[size] = len(statements)
    # auth, users, accounts (the first request of each admin also records its token's use)
    assert counts[2] == counts[6] <= 5, counts


async def test_the_count_leaves_out_the_apps_background_statements(runtime: Runtime) -> None:
    """The metrics gauges' refresh (three counts every 15 s on the app's engine) is not
    part of a request: it is left out of the counts above, and only it."""
    with recorded_statements(runtime.engine) as statements:
        await asyncio.create_task(refresh_gauges(runtime), name="mailsync-metrics-gauges")
        in_background = len(statements)
        await refresh_gauges(runtime)
    assert (in_background, len(statements)) == (0, 3)
