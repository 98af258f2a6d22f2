"""A first sync stores past mail newest first by arrival date, whatever the UID order, so
the inbox's first page is right after the first chunk; a run that dies after that chunk
resumes without a gap or a duplicate (the backfill checkpoint is not a UID range then)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.models import Message
from core.runtime import Runtime
from core.sync import pipeline
from core.sync.pipeline import FIRST_CHUNK, MessagePipeline
from core.sync.rows import internal_date
from core.sync.run import AccountSyncRun
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import EVERY_RUN, connect_and_start, private_mailbox, sync_once

NewUser = Callable[..., Awaitable[TestUser]]
COUNT = 180


def _message(index: int) -> bytes:
    return (
        f"From: sender{index}@example.com\r\nTo: me@example.com\r\n"
        f"Subject: arrival {index}\r\nMessage-ID: <newest-{index}@example.com>\r\n"
        f"\r\nBody {index}\r\n"
    ).encode()


async def test_first_chunk_is_the_newest_page_and_a_crash_after_it_resumes(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(12)
    now = datetime.now(UTC).replace(microsecond=0)
    ages = list(range(COUNT))
    rng.shuffle(ages)  # arrival dates in no relation to the UIDs
    arrived = {index: now - timedelta(hours=age) for index, age in enumerate(ages)}
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append_many("INBOX", ((_message(i), arrived[i]) for i in range(COUNT)))
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["INBOX"])

        written = 0
        original = MessagePipeline._write

        async def write_then_die(self: MessagePipeline, *args: Any) -> int:
            nonlocal written
            if written == 1:
                raise ConnectionResetError("the connection dropped after the first chunk")
            written += 1
            return await original(self, *args)

        monkeypatch.setattr(pipeline.MessagePipeline, "_write", write_then_die)
        assert await AccountSyncRun(runtime, account_id, EVERY_RUN).run() is None  # failed
        async with runtime.session_factory() as session:
            first = set(await session.scalars(select(Message.subject)))
        newest = sorted(arrived, key=lambda i: arrived[i], reverse=True)[:FIRST_CHUNK]
        assert first == {f"arrival {i}" for i in newest}

        monkeypatch.setattr(pipeline.MessagePipeline, "_write", original)
        result = await sync_once(runtime, account_id)
        assert result.counts.new == COUNT - FIRST_CHUNK
    async with runtime.session_factory() as session:
        rows = list(await session.execute(select(Message.subject, Message.internal_date)))
        distinct = await session.scalar(select(func.count(func.distinct(Message.uid))))
    assert distinct == len(rows) == COUNT
    assert {subject: when for subject, when in rows} == {
        f"arrival {i}": arrived[i] for i in range(COUNT)
    }


@pytest.mark.parametrize(
    "value",
    [
        " 1-Nov-2026 12:00:00 +0000",
        "17-Jul-1996 02:44:25 -0700",
        "01-Jan-2000 00:00:00 +1400",
        "1-nov-2026 12:00:00 +0130",  # month in another case: strptime's path
        "31-Feb-2026 12:00:00 +0000",
        "17-Jul-1996 2:44:25 -0700",
        "not a date",
    ],
)
def test_internal_date_reads_what_strptime_reads(value: str) -> None:
    try:
        expected: datetime | None = datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        expected = None
    found = internal_date(value)
    assert found == expected
    assert (found.utcoffset() if found else None) == (expected.utcoffset() if expected else None)
