"""Search vectors of a bulk sync are filled after its rows are visible, and nothing is lost:
rows still waiting are found by search, counted in ``searchBacklog``, and filled by the
next run after a crash (core/sync/search_index.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from core.models import Message
from core.models.message import computed_search_vector
from core.runtime import Runtime
from core.sync import search_index
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, sync_once

NewUser = Callable[..., Awaitable[TestUser]]
COUNT = 120  # a first chunk of 50 and a chunk of 70: both defer

SEARCH = """
query Search($search: String!) {
  inbox(filter: {search: $search}, first: 50) { edges { node { subject } } }
  conversations(filter: {search: $search}, first: 50) { edges { node { messageCount } } }
}
"""
BACKLOG = "query Backlog($id: ID!) { mailAccount(id: $id) { searchBacklog messageCount } }"


def _message(index: int) -> bytes:
    return (
        f"From: Sender {index} <sender{index:04d}@vendor{index:04d}.example>\r\n"
        "To: me@example.com\r\n"
        f"Subject: proposal {index}\r\n"
        f"Message-ID: <search-{index}@example.com>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "\r\n"
        f"Body word zebra{index:04d} for the search.\r\n"
    ).encode()


async def _vectors(runtime: Runtime, account_id: uuid.UUID) -> tuple[int, int]:
    """(rows waiting, rows whose vector differs from the function's value)."""
    async with runtime.session_factory() as session:
        waiting = await session.scalar(
            select(func.count()).where(
                Message.account_id == account_id, Message.search_vector.is_(None)
            )
        )
        wrong = await session.scalar(
            select(func.count()).where(
                Message.account_id == account_id,
                Message.search_vector.is_not(None),
                Message.search_vector.is_distinct_from(computed_search_vector(Message)),
            )
        )
    return int(waiting or 0), int(wrong or 0)


async def _found(client: GraphQLClient, search: str) -> tuple[list[str], int]:
    data = await client.execute(SEARCH, {"search": search})
    subjects = sorted(e["node"]["subject"] for e in data["inbox"]["edges"])
    return subjects, len(data["conversations"]["edges"])


async def _synced_account(
    gql: GraphQLClient, runtime: Runtime, owner: TestUser, box: Any
) -> tuple[uuid.UUID, int]:
    now = datetime.now(UTC)
    await box.admin.append_many(
        "INBOX", ((_message(i), now - timedelta(minutes=i)) for i in range(COUNT))
    )
    account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
    result = await sync_once(runtime, account_id)
    assert result.counts.new == COUNT
    return account_id, result.counts.search_deferred


async def test_a_bulk_sync_defers_its_vectors_and_fills_them_after_the_run(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id, deferred = await _synced_account(gql, runtime, owner, box)
    assert deferred == COUNT  # every chunk had at least DEFER_ROWS rows
    assert await _vectors(runtime, account_id) == (0, 0)  # filled, and as the trigger would
    client = gql.as_user(owner.token)
    data = await client.execute(BACKLOG, {"id": str(account_id)})
    assert data["mailAccount"] == {"searchBacklog": 0, "messageCount": COUNT}
    assert await _found(client, "zebra0007") == (["proposal 7"], 1)  # a body word
    assert await _found(client, "vendor0099") == (["proposal 99"], 1)  # an address's domain


async def test_new_mail_of_an_ordinary_run_is_indexed_on_insert(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id, _ = await _synced_account(gql, runtime, owner, box)
        await box.admin.append_many("INBOX", [(_message(COUNT), datetime.now(UTC))])
        result = await sync_once(runtime, account_id)
    assert (result.counts.new, result.counts.search_deferred) == (1, 0)
    async with runtime.session_factory() as session:
        vector = await session.scalar(
            select(Message.search_vector).where(
                Message.account_id == account_id, Message.subject == f"proposal {COUNT}"
            )
        )
    assert vector is not None and f"'zebra{COUNT:04d}'" in vector


async def test_waiting_rows_are_found_counted_and_filled_by_the_next_run(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """A worker killed between a deferred chunk's commit and the catch-up leaves its rows
    without vectors: search still finds them, the API says how many wait, and the next
    run of the account (nothing new on the server) fills them."""
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id, _ = await _synced_account(gql, runtime, owner, box)
        async with runtime.session_factory() as session, session.begin():
            await session.execute(
                update(Message).where(Message.account_id == account_id).values(search_vector=None)
            )
        assert await _vectors(runtime, account_id) == (COUNT, 0)
        data = await client.execute(BACKLOG, {"id": str(account_id)})
        assert data["mailAccount"]["searchBacklog"] == COUNT
        assert await _found(client, "zebra0042") == (["proposal 42"], 1)
        assert await _found(client, "sender0003") == (["proposal 3"], 1)
        assert await _found(client, "proposal zebra0005") == (["proposal 5"], 1)
        assert await _found(client, "nowhere-word") == ([], 0)

        result = await sync_once(runtime, account_id)
    assert (result.counts.new, result.counts.search_deferred) == (0, 0)
    assert await _vectors(runtime, account_id) == (0, 0)
    data = await client.execute(BACKLOG, {"id": str(account_id)})
    assert data["mailAccount"]["searchBacklog"] == 0
    assert await _found(client, "zebra0042") == (["proposal 42"], 1)


async def test_catch_up_is_shared_between_processes_without_filling_twice(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Two catch-ups of one account at once (two workers' runs) fill each row once."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id, _ = await _synced_account(gql, runtime, owner, box)
    async with runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Message).where(Message.account_id == account_id).values(search_vector=None)
        )
    sessions = runtime.session_factory
    filled = await asyncio.gather(
        search_index.catch_up(sessions, account_id, batch=10),
        search_index.catch_up(sessions, account_id, batch=10),
    )
    assert sum(filled) == COUNT
    assert await _vectors(runtime, account_id) == (0, 0)
