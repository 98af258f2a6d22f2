"""totalCount is kept between requests and stays exact through every kind of change.

A count is computed once per (folders at their versions, filter) and served from the
process's cache after that (core/inbox/counts.py); the triggers of migration 0020 move a
folder's version on every statement that changes its messages, whoever sends it. Each
step below changes the mailbox the way one writer does (the API's marks and deletes, the
sync's inserts, expunges and flag updates, an account's removal) and checks the count a
user sees, then that an unchanged mailbox is counted from the cache.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from core.db import session_scope
from core.inbox import counts
from core.models import FolderChange, FolderRole, MailAccount, Message, Sharing
from core.runtime import Runtime
from core.sync import search_index
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import MARK, api_id, seed_account, seed_messages
from tests.support.mailservers import ImapServer
from tests.support.statements import recorded_statements
from tests.support.sync import connect_and_start, private_mailbox, sync_once
from tests.sync.test_sync_engine import make_message

COUNTS = """
query($accounts: [ID!]) {
  all: inbox(first: 0, filter: {accountIds: $accounts}) { totalCount }
  unread: inbox(first: 0, filter: {accountIds: $accounts, unread: true}) { totalCount }
}
"""
MOVE = """
mutation($ids: [ID!]!) {
  moveMessages(ids: $ids, to: {role: SENT}) { userErrors { code message } }
}
"""


def _count_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if "count(DISTINCT" in s]


async def _counts(
    client: GraphQLClient, runtime: Runtime, accounts: list[str] | None = None
) -> tuple[int, int, int]:
    """(all, unread, how many count scans the request ran)."""
    with recorded_statements(runtime.engine) as statements:
        data = await client.execute(COUNTS, {"accounts": accounts})
    scans = len(_count_statements(statements))
    return data["all"]["totalCount"], data["unread"]["totalCount"], scans


async def test_the_count_follows_every_writer_and_is_kept_while_nothing_changes(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Counts Inc")
    teammate = await new_user(company="Counts Inc")
    mine = await seed_account(runtime, viewer)
    ids = await seed_messages(runtime, mine, [{} for _ in range(5)])
    client = gql.as_user(viewer.token)

    assert await _counts(client, runtime) == (5, 5, 2)  # counted: all, unread
    assert await _counts(client, runtime) == (5, 5, 0)  # kept: nothing changed

    # The API marks two read. A version is the folder's, whatever the filter: both counts
    # are counted again (the whole one to the same figure), then kept.
    marked = await client.execute(
        MARK, {"ids": [api_id(runtime, i) for i in ids[:2]], "read": True}
    )
    assert not marked["markMessages"]["userErrors"]
    assert await _counts(client, runtime) == (5, 3, 2)
    assert await _counts(client, runtime) == (5, 3, 0)

    # New mail stored (as the sync stores it).
    [new] = await seed_messages(runtime, mine, [{}])
    assert (await _counts(client, runtime))[:2] == (6, 4)

    # Moved out of the inbox through the API.
    moved = await client.execute(MOVE, {"ids": [api_id(runtime, new)]})
    assert not moved["moveMessages"]["userErrors"]
    assert (await _counts(client, runtime))[:2] == (5, 3)

    # The sync's writes: an expunge, a \Deleted flag, a flag change from another client.
    async with session_scope(runtime.session_factory) as session:
        await session.execute(delete(Message).where(Message.id == ids[4]))
    assert (await _counts(client, runtime))[:2] == (4, 2)
    async with session_scope(runtime.session_factory) as session:
        await session.execute(update(Message).where(Message.id == ids[3]).values(is_deleted=True))
    assert (await _counts(client, runtime))[:2] == (3, 1)
    async with session_scope(runtime.session_factory) as session:
        await session.execute(update(Message).where(Message.id == ids[0]).values(is_read=False))
    assert await _counts(client, runtime) == (3, 2, 2)

    # A teammate shares an account: a new scope, counted once, then kept.
    shared = await seed_account(runtime, teammate, sharing=Sharing.SHARED)
    await seed_messages(runtime, shared, [{} for _ in range(4)])
    assert await _counts(client, runtime) == (7, 6, 2)
    assert await _counts(client, runtime) == (7, 6, 0)
    # One account at a time is its own listing.
    assert (await _counts(client, runtime, [str(shared.id)]))[:2] == (4, 4)

    # The teammate removes the account: its rows go by cascade, and so does the count.
    async with session_scope(runtime.session_factory) as session:
        await session.execute(delete(MailAccount).where(MailAccount.id == shared.id))
    assert (await _counts(client, runtime))[:2] == (3, 2)


async def test_a_copy_in_another_folder_is_counted_once_as_it_comes_and_goes(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user()
    mine = await seed_account(runtime, viewer)
    other = await seed_account(runtime, viewer)
    await seed_messages(runtime, mine, [{"message_id": "<same@x>"}, {}])
    client = gql.as_user(viewer.token)
    assert (await _counts(client, runtime))[:2] == (2, 2)
    [copy] = await seed_messages(runtime, other, [{"message_id": "<same@x>"}])
    assert (await _counts(client, runtime))[:2] == (2, 2)  # one message, two accounts
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(Message).where(Message.id == copy).values(message_id="<different@x>")
        )
    assert (await _counts(client, runtime))[:2] == (3, 3)


async def _versions(runtime: Runtime, folder_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    async with session_scope(runtime.session_factory) as session:
        return await counts.versions(session, folder_ids)


async def _change_rows(runtime: Runtime, folder_ids: list[uuid.UUID]) -> int:
    async with session_scope(runtime.session_factory) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(FolderChange)
                .where(FolderChange.folder_id.in_(folder_ids))
            )
            or 0
        )


async def test_compacting_keeps_every_version_and_never_waits(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user()
    account = await seed_account(runtime, viewer)
    folders = list(account.folders.values())
    for _ in range(3):
        await seed_messages(runtime, account, [{}])
        await seed_messages(runtime, account, [{}], role=FolderRole.SENT)
    before = await _versions(runtime, folders)
    assert all(v >= 3 for v in before.values()) and await _change_rows(runtime, folders) >= 6
    client = gql.as_user(viewer.token)
    assert (await _counts(client, runtime))[2] == 2

    # One compaction holds its rows (not committed): a second skips them, at once.
    async with session_scope(runtime.session_factory) as holding:
        await counts.compact(holding, account.id)
        async with session_scope(runtime.session_factory) as second:
            await asyncio.wait_for(counts.compact(second, account.id), timeout=5)
        assert await _versions(runtime, folders) == before  # seen from outside: the same
    assert await _versions(runtime, folders) == before
    assert await _change_rows(runtime, folders) == 2  # one per folder
    assert (await _counts(client, runtime))[2] == 0  # same versions: still kept


async def test_a_transaction_appends_one_change_row_per_folder(
    new_user: NewUser, runtime: Runtime
) -> None:
    """The sync's flag updates run one execution per row: a folder still gets one change
    row per transaction, and its version moves at the commit, not before."""
    account = await seed_account(runtime, await new_user())
    inbox = account.folders[FolderRole.INBOX]
    ids = await seed_messages(runtime, account, [{} for _ in range(3)])
    before, rows_before = (
        (await _versions(runtime, [inbox]))[inbox],
        await _change_rows(runtime, [inbox]),
    )
    async with session_scope(runtime.session_factory) as session:
        for message_id in ids:
            await session.execute(
                update(Message).where(Message.id == message_id).values(is_flagged=True)
            )
        assert (await _versions(runtime, [inbox]))[inbox] == before  # others: not yet
    assert (await _versions(runtime, [inbox]))[inbox] == before + 1
    assert await _change_rows(runtime, [inbox]) == rows_before + 1


async def test_filling_search_vectors_changes_no_version(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user()
    account = await seed_account(runtime, viewer)
    await seed_messages(runtime, account, [{"subject": f"vector {i}"} for i in range(3)])
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(Message).where(Message.account_id == account.id).values(search_vector=None)
        )
    folders = list(account.folders.values())
    before = await _versions(runtime, folders)
    assert await search_index.catch_up(runtime.session_factory, account.id) == 3
    assert await _versions(runtime, folders) == before
    # The setting was the catch-up's transaction's own: the next writer counts again.
    await seed_messages(runtime, account, [{}])
    assert (await _versions(runtime, folders))[account.folders[FolderRole.INBOX]] > before[
        account.folders[FolderRole.INBOX]
    ]


@pytest.mark.parametrize("kind", ["dovecot"])
async def test_a_sync_run_that_stored_mail_leaves_one_change_row_per_folder(
    kind: str,
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    async with private_mailbox(kind, dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        # Enough for bulk chunks (their vectors deferred, then caught up).
        mail = [(make_message(f"run {i}"), now - timedelta(minutes=i)) for i in range(30)]
        await box.admin.append_many("INBOX", mail)
        user = await new_user()
        client = gql.as_user(user.token)
        account_id = await connect_and_start(client, box, labels=["INBOX"])
        result = await sync_once(runtime, account_id)
        assert result.counts.new == 30
        async with session_scope(runtime.session_factory) as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT c.folder_id, count(*) FROM folder_changes c"
                        " JOIN folders f ON f.id = c.folder_id"
                        " WHERE f.account_id = :account GROUP BY 1"
                    ),
                    {"account": account_id},
                )
            ).all()
        assert rows and all(n == 1 for _, n in rows)
        assert (await _counts(client, runtime))[:2] == (30, 30)
