"""A connection to the IMAP server dropped in the middle of a big FETCH.

A loopback proxy between the sync and Dovecot cuts the connection after a number of
server->client bytes that falls inside the fetch of 500 messages (about 4 MB): the run
fails, the account shows ERROR with a short lastError and no secret, the chunks committed
before the cut stay (each with its checkpoint), and the next run, through the same proxy
no longer cutting, completes with the store equal to the server and nothing twice.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Folder, Message
from core.runtime import Runtime
from core.sync.run import AccountSyncRun
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mail_corpus import corpus
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    EVERY_RUN,
    Mailbox,
    connect_and_start,
    private_mailbox,
    server_state,
    stored_state,
    sync_once,
)
from tests.support.tcp_proxy import CutMode, CuttingProxy

BIG = 500
ACCOUNT = """
query($id: ID!) {
  mailAccount(id: $id) { status lastError messageCount folders { name messageCount } }
}"""


async def stored_count(runtime: Runtime, account_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.account_id == account_id)
        )
    return int(count or 0)


async def assert_no_duplicates(runtime: Runtime, account_id: uuid.UUID) -> None:
    async with runtime.session_factory() as session:
        twice = await session.execute(
            select(Message.folder_id, Message.message_id, func.count())
            .where(Message.account_id == account_id, Message.message_id.is_not(None))
            .group_by(Message.folder_id, Message.message_id)
            .having(func.count() > 1)
        )
        assert twice.all() == []
        keys = await session.execute(
            select(Message.folder_id, Message.uid).where(Message.account_id == account_id)
        )
        pairs = keys.all()
        assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize(
    ("phase", "mode", "seed"),
    [("first sync", "close", 31), ("new mail", "reset", 32)],
    ids=["first-sync-fin", "new-mail-rst"],
)
async def test_a_connection_cut_mid_fetch_fails_the_run_and_the_next_run_completes(
    phase: str,
    mode: CutMode,
    seed: int,
    gql: GraphQLClient,
    new_user: Callable[..., Awaitable[TestUser]],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    mail = corpus(BIG + 20, seed)
    small, big = mail[:20], mail[20:]

    def dated(raws: list[bytes]) -> list[tuple[bytes, datetime]]:
        return [(raw, now - timedelta(days=700 * rng.random())) for raw in raws]

    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        CuttingProxy(dovecot.host, dovecot.port) as proxy,
    ):
        proxied = Mailbox(
            dataclasses.replace(box.server, host=proxy.host, port=proxy.port),
            box.username,
            box.password,
            box.admin,
        )
        user = await new_user()
        client = gql.as_user(user.token)
        if phase == "first sync":
            await box.admin.append_many("INBOX", dated(big))
            account_id = await connect_and_start(client, proxied, labels=["INBOX"])
        else:
            await box.admin.append_many("INBOX", dated(small))
            account_id = await connect_and_start(client, proxied, labels=["INBOX"])
            await sync_once(runtime, account_id)
            await box.admin.append_many("INBOX", [(raw, now) for raw in big])
        before = await stored_count(runtime, account_id)

        # Inside the fetch, late enough that a chunk has been written (the pipeline keeps one
        # chunk on the wire and one parsed ahead of the writes; chunks of 100 messages here)
        # and well before the end.
        size = sum(len(raw) for raw in big)
        proxy.arm(rng.randint(size * 45 // 100, size * 75 // 100), mode)
        started = time.monotonic()
        tuning = dataclasses.replace(EVERY_RUN, fetch_chunk=100)
        failed = await AccountSyncRun(runtime, account_id, tuning).run()
        elapsed = time.monotonic() - started
        assert failed is None, "the run went on although its connection was cut"
        assert proxy.cuts == 1
        committed = await stored_count(runtime, account_id) - before
        assert 0 < committed < BIG, f"{committed} of {BIG} stored when the connection dropped"
        # The dead connection is noticed by the command timeout (5 s in tests), not never.
        assert elapsed < 3 * runtime.settings.mail_timeout_seconds + 5, elapsed

        shown = (await client.execute(ACCOUNT, {"id": str(account_id)}))["mailAccount"]
        assert shown["status"] == "ERROR"
        error = shown["lastError"]
        assert error and len(error) <= 200, error
        assert box.password not in error
        assert "Traceback" not in error and "\n" not in error
        assert box.password not in caplog.text
        # What was committed before the cut is sound: real messages, each once.
        server = await server_state(box.admin, ["INBOX"])
        stored = await stored_state(runtime, account_id)
        assert set(stored["INBOX"]) <= set(server["INBOX"])
        await assert_no_duplicates(runtime, account_id)

        proxy.disarm()
        result = await sync_once(runtime, account_id)
        assert proxy.cuts == 1
        assert result.counts.new == BIG - committed
        assert await stored_state(runtime, account_id) == await server_state(box.admin, ["INBOX"])
        await assert_no_duplicates(runtime, account_id)
        async with runtime.session_factory() as session:
            folder = await session.scalar(
                select(Folder).where(Folder.account_id == account_id, Folder.name == "INBOX")
            )
            assert folder is not None and folder.backfill_before_uid is None
        shown = (await client.execute(ACCOUNT, {"id": str(account_id)}))["mailAccount"]
        total = len(server["INBOX"])
        assert (shown["status"], shown["lastError"], shown["messageCount"]) == (
            "ACTIVE",
            None,
            total,
        )
