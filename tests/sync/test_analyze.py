"""A bulk sync leaves the planner statistics of what it filled fresh, so the new mailbox's
first pages are planned for its real size (core/sync/analyze.py). The test database runs
with autovacuum off in CI, so nothing else refreshes them there; TRUNCATE (each test's
clean start) leaves a table's row estimate unknown (-1)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from core.runtime import Runtime
from core.sync import analyze
from core.sync.analyze import refresh_after_bulk_sync
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, sync_once

NewUser = Callable[..., Awaitable[TestUser]]
COUNT = 120  # two chunks, both stored in bulk (search vectors deferred)

ESTIMATES = text(
    "SELECT relname, reltuples FROM pg_class "
    "WHERE oid IN (to_regclass('messages'), to_regclass('thread_keys'))"
)
PAGE_ESTIMATE = text(
    "EXPLAIN (FORMAT JSON) SELECT id FROM messages WHERE account_id = :account ORDER BY date DESC"
)


def _message(index: int) -> bytes:
    return (
        "From: Buyer <buyer@example.org>\r\n"
        "To: me@example.com\r\n"
        f"Subject: order {index}\r\n"
        f"Message-ID: <analyze-{index}@example.org>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "\r\n"
        "Hello.\r\n"
    ).encode()


async def _estimates(runtime: Runtime) -> dict[str, float]:
    async with runtime.session_factory() as session:
        return {name: float(rows) for name, rows in await session.execute(ESTIMATES)}


async def _planned_rows(runtime: Runtime, account_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        plan = await session.scalar(PAGE_ESTIMATE, {"account": account_id})
    return int(plan[0]["Plan"]["Plan Rows"])


async def test_a_bulk_sync_refreshes_the_statistics_of_what_it_stored(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    owner = await new_user()
    now = datetime.now(UTC)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append_many(
            "INBOX", ((_message(i), now - timedelta(minutes=i)) for i in range(COUNT))
        )
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        result = await sync_once(runtime, account_id)
        assert (result.counts.new, result.counts.search_deferred) == (COUNT, COUNT)
        estimates = await _estimates(runtime)
        assert estimates["messages"] == COUNT  # ANALYZE reads every page of a small table
        assert estimates["thread_keys"] >= COUNT  # each message files its Message-ID
        assert await _planned_rows(runtime, account_id) == COUNT

        # New mail of an ordinary run is no bulk load: the statistics stay as they were
        # (autovacuum's rule would not analyze for one row either).
        await box.admin.append_many("INBOX", [(_message(COUNT), now)])
        result = await sync_once(runtime, account_id)
        assert (result.counts.new, result.counts.search_deferred) == (1, 0)
        assert (await _estimates(runtime))["messages"] == COUNT


async def test_fresh_statistics_are_left_alone(runtime: Runtime) -> None:
    async with runtime.session_factory() as session, session.begin():
        await session.execute(text("ANALYZE messages"))
        await session.execute(text("ANALYZE thread_keys"))
    # Nothing changed since, and the caller stored nothing: autovacuum's rule says fresh.
    assert await refresh_after_bulk_sync(runtime.session_factory, 0) == []
    # A caller that stored more than the rule's threshold makes them stale.
    assert await refresh_after_bulk_sync(runtime.session_factory, 10_000) == list(analyze.TABLES)


async def test_one_process_refreshes_at_a_time(runtime: Runtime) -> None:
    """While another process holds the refresh, a second one skips it (not waits for it)."""
    async with runtime.session_factory() as holder, holder.begin():
        await holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": analyze._LOCK})
        assert await refresh_after_bulk_sync(runtime.session_factory, 10_000) == []
    assert await refresh_after_bulk_sync(runtime.session_factory, 10_000) == list(analyze.TABLES)
