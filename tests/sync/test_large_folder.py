"""A 10,000-message folder: every command's response stays parseable (no recursion limit,
no quadratic reads in aioimaplib) and the whole folder lands, once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Folder, Message
from core.runtime import Runtime
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, sync_once

NewUser = Callable[..., Awaitable[TestUser]]
COUNT = 10_000


def _small_message(index: int) -> bytes:
    return (
        f"From: sender{index % 50}@example.com\r\n"
        f"To: me@example.com\r\n"
        f"Subject: message {index}\r\n"
        f"Message-ID: <large-{index}@example.com>\r\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n"
        f"Body {index}\r\n"
    ).encode()


# ~50 s alone on 2 cores; room for a machine that is running other work too.
@pytest.mark.timeout(300)
async def test_ten_thousand_messages_sync_and_flags_scan_in_bounded_responses(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many(
            "INBOX", ((_small_message(i), now - timedelta(minutes=i)) for i in range(COUNT))
        )
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])
        started = time.monotonic()
        result = await sync_once(runtime, account_id)
        elapsed = time.monotonic() - started
        assert result.counts.new == COUNT, f"stored {result.counts.new} in {elapsed:.1f}s"

        # A flag change on every 10th message: one CHANGEDSINCE fetch of 1,000 lines.
        await box.admin.store_range("INBOX", "1:*:10", "+FLAGS", "\\Seen")
        second = await sync_once(runtime, account_id)
        assert second.counts.updated == COUNT // 10
    async with runtime.session_factory() as session:
        stored = await session.scalar(select(func.count()).select_from(Message))
        distinct = await session.scalar(select(func.count(func.distinct(Message.message_id))))
        folder = await session.scalar(select(Folder).where(Folder.name == "INBOX"))
    assert stored == distinct == COUNT
    assert folder is not None
    assert (folder.message_count, folder.unread_count) == (COUNT, COUNT - COUNT // 10)
