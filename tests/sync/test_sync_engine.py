"""The sync engine against Dovecot (CONDSTORE) and pymap (neither CONDSTORE nor QRESYNC)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from core.models import AccountStatus, MailAccount, Message, Plan
from core.runtime import Runtime
from core.sync.parse_pool import MessageParser
from core.sync.run import AccountSyncRun
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
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

NewUser = Callable[..., Awaitable[TestUser]]


def make_message(
    subject: str, *, message_id: str | None = None, reply_to: str | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.com>"
    message["To"] = "bob@example.com"
    message["Subject"] = subject
    message["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = f"<{message_id or subject.replace(' ', '-')}@example.com>"
    if reply_to:
        message["In-Reply-To"] = f"<{reply_to}@example.com>"
        message["References"] = f"<{reply_to}@example.com>"
    message.set_content(f"Body of {subject}\n")
    return bytes(message)


@pytest_asyncio.fixture(params=["dovecot", "pymap"])
async def mailbox(
    request: pytest.FixtureRequest, dovecot: ImapServer, tmp_path: Path
) -> AsyncIterator[Mailbox]:
    async with private_mailbox(request.param, dovecot, tmp_path) as box:
        yield box


async def test_first_sync_mirrors_the_folder_and_later_syncs_follow_changes(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, mailbox: Mailbox
) -> None:
    now = datetime.now(UTC)
    await mailbox.admin.append_many(
        "INBOX", [(make_message(f"hello {i}"), now - timedelta(days=i)) for i in range(5)]
    )
    user = await new_user(plan=None)
    account_id = await connect_and_start(gql.as_user(user.token), mailbox, labels=["INBOX"])

    first = await sync_once(runtime, account_id)
    assert first.initial is True
    expected = await server_state(mailbox.admin, ["INBOX"])
    assert await stored_state(runtime, account_id) == expected
    assert first.counts.new == len(expected["INBOX"])
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
    assert account is not None
    assert account.status is AccountStatus.ACTIVE and account.last_synced_at is not None

    # New mail, a flag change and a deletion.
    await mailbox.admin.append("INBOX", make_message("fresh"), when=now)
    uids = await mailbox.admin.uids("INBOX")
    await mailbox.admin.store("INBOX", uids[0], "+FLAGS", "\\Seen \\Flagged")
    await mailbox.admin.expunge("INBOX", uids[1])
    second = await sync_once(runtime, account_id)
    assert second.initial is False
    assert (second.counts.new, second.counts.updated, second.counts.removed) == (1, 1, 1)
    assert await stored_state(runtime, account_id) == await server_state(mailbox.admin, ["INBOX"])

    # Nothing changed: nothing counted.
    third = await sync_once(runtime, account_id)
    assert (third.counts.new, third.counts.updated, third.counts.removed) == (0, 0, 0)


async def test_past_sync_window_limits_the_first_sync(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many(
            "INBOX",
            [
                (make_message("recent"), now - timedelta(days=3)),
                (make_message("old"), now - timedelta(days=90)),
            ],
        )
        user = await new_user()
        account_id = await connect_and_start(
            gql.as_user(user.token), box, labels=["INBOX"], past_sync="ONE_MONTH"
        )
        await sync_once(runtime, account_id)
        async with runtime.session_factory() as session:
            subjects = list(await session.scalars(select(Message.subject)))
        assert subjects == ["recent"]


async def test_uidvalidity_change_rebuilds_without_duplicates(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.create("Projects")
        messages = [(make_message(f"p{i}"), now - timedelta(days=i)) for i in range(3)]
        await box.admin.append_many("Projects", messages)
        user = await new_user()
        account_id = await connect_and_start(gql.as_user(user.token), box, labels=["Projects"])
        await sync_once(runtime, account_id)
        before = await box.admin.uidvalidity("Projects")

        await box.admin.delete("Projects")  # recreated with the same mail: new UIDVALIDITY
        await box.admin.create("Projects")
        await box.admin.append_many("Projects", messages)
        assert await box.admin.uidvalidity("Projects") != before

        result = await sync_once(runtime, account_id)
        assert result.counts.new == 0  # old mail is not news
        assert await stored_state(runtime, account_id) == await server_state(
            box.admin, ["Projects"]
        )
        async with runtime.session_factory() as session:
            count = await session.scalar(select(func.count()).select_from(Message))
        assert count == 3


async def test_threads_join_across_accounts_even_when_the_reply_arrives_first(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    user = await new_user(plan=Plan.PROFESSIONAL)
    client = gql.as_user(user.token)
    now = datetime.now(UTC)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as sales,
        private_mailbox("dovecot", dovecot, tmp_path) as support,
    ):
        await sales.admin.append("INBOX", make_message("re: offer", reply_to="offer"), when=now)
        await support.admin.append("INBOX", make_message("offer"), when=now)
        await support.admin.append("INBOX", make_message("unrelated"), when=now)
        sales_id = await connect_and_start(client, sales, labels=["INBOX"])
        support_id = await connect_and_start(client, support, labels=["INBOX"])
        await sync_once(runtime, sales_id)  # the reply first
        await sync_once(runtime, support_id)
    async with runtime.session_factory() as session:
        threads = dict((await session.execute(select(Message.subject, Message.thread_id))).all())
    assert threads["re: offer"] == threads["offer"]
    assert threads["unrelated"] != threads["offer"]


async def test_parsing_in_a_process_pool_stores_the_same_rows(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    """The worker parses in child processes (MAILSYNC_PARSE_PROCESSES); tests elsewhere
    parse inline. Both must give the same messages."""
    parser = MessageParser(1)
    try:
        async with private_mailbox("dovecot", dovecot, tmp_path) as box:
            now = datetime.now(UTC)
            await box.admin.append_many(
                "INBOX", [(make_message(f"pooled {i}"), now) for i in range(120)]
            )
            user = await new_user()
            account_id = await connect_and_start(gql.as_user(user.token), box, labels=["INBOX"])
            run = AccountSyncRun(runtime, account_id, replace(EVERY_RUN, parser=parser))
            result = await run.run()
            assert result is not None and result.counts.new == 120
            assert await stored_state(runtime, account_id) == await server_state(
                box.admin, ["INBOX"]
            )
    finally:
        parser.close()
    async with runtime.session_factory() as session:
        subjects = set(await session.scalars(select(Message.subject)))
    assert subjects == {f"pooled {i}" for i in range(120)}
