"""A folder the server renumbers (a new UIDVALIDITY) keeps its rows: every message is
found again by its content fingerprint, also without a Message-ID or with one that other
copies share, so nothing old is announced as new and every message keeps its id."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from core.models import Folder, Message
from core.runtime import Runtime
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_admin import ImapAdmin
from tests.support.imap_quirks import Quirks, QuirksProxy
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    connect_and_start,
    private_mailbox,
    seen_through,
    server_state,
    state_differences,
    stored_state,
    sync_once,
)

NewUser = Callable[..., Awaitable[TestUser]]
WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def message(subject: str, body: str, *, message_id: str | None) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ann Example <ann@example.com>"
    mail["To"] = "bob@example.com"
    mail["Subject"] = subject
    mail["Date"] = "Fri, 20 Nov 2026 09:30:00 +0000"
    if message_id is not None:
        mail["Message-ID"] = f"<{message_id}@example.com>"
    mail.set_content(body)
    return bytes(mail)


def awkward_mail() -> list[bytes]:
    """What Message-ID matching cannot tell apart."""
    return [
        message("with an id", "one\n", message_id="unique-1"),
        message("with an id", "two\n", message_id="unique-2"),
        message("no id", "a note without a Message-ID\n", message_id=None),
        message("no id", "another one, same subject\n", message_id=None),
        message("shared id", "first copy\n", message_id="shared"),
        message("shared id", "second copy, edited\n", message_id="shared"),
        message("twice", "the very same bytes\n", message_id="twice"),
        message("twice", "the very same bytes\n", message_id="twice"),
    ]


async def row_ids(runtime: Runtime, account_id: uuid.UUID, folder: str) -> list[int]:
    async with runtime.session_factory() as session:
        rows = await session.scalars(
            select(Message.id)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id, Folder.name == folder)
            .order_by(Message.id)
        )
        return list(rows)


async def recreate(admin: ImapAdmin, folder: str) -> None:
    """Delete the folder and create it again with the same mail: a new UIDVALIDITY."""
    before = await admin.uidvalidity(folder)
    raws = await admin.fetch_raw(folder)
    await admin.delete(folder)
    await admin.create(folder)
    await admin.append_many(folder, [(raw, WHEN) for raw in raws])
    assert await admin.uidvalidity(folder) != before


async def test_a_recreated_folder_keeps_its_rows_with_or_without_message_ids(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.create("Projects")
        await box.admin.append_many("Projects", [(raw, WHEN) for raw in awkward_mail()])
        account_id = await connect_and_start(gql.as_user(owner.token), box, labels=["Projects"])
        await sync_once(runtime, account_id)
        ids = await row_ids(runtime, account_id, "Projects")
        assert len(ids) == 8

        await recreate(box.admin, "Projects")
        result = await sync_once(runtime, account_id)
        expected = await server_state(box.admin, ["Projects"])
        assert not state_differences(await stored_state(runtime, account_id), expected)
        assert (result.counts.new, result.counts.removed) == (0, 0)
        assert await row_ids(runtime, account_id, "Projects") == ids


async def test_a_server_that_renews_uidvalidity_on_every_append_reports_only_new_mail(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Mailutils gives the folder a new UIDVALIDITY on each APPEND: 7 messages, one at a
    time, must be 7 new ones, not a re-announcement of the folder each time."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        QuirksProxy(box.server.host, box.server.port, Quirks(bump_uidvalidity=True)) as proxy,
    ):
        seen = seen_through(box, proxy)
        through = ImapAdmin(seen.server, box.username, box.password)
        mail = awkward_mail()
        await through.append_many("INBOX", [(raw, WHEN) for raw in mail[:4]])
        account_id = await connect_and_start(gql.as_user(owner.token), seen, labels=["INBOX"])
        await sync_once(runtime, account_id)
        for number, raw in enumerate(
            [*mail[4:], *(message(f"n{i}", "x\n", message_id=None) for i in range(3))]
        ):
            ids = await row_ids(runtime, account_id, "INBOX")
            before = await through.uidvalidity("INBOX")
            await through.append_many("INBOX", [(raw, WHEN)])
            assert await through.uidvalidity("INBOX") != before
            result = await sync_once(runtime, account_id)
            assert (result.counts.new, result.counts.removed) == (1, 0), f"append {number}"
            now = await row_ids(runtime, account_id, "INBOX")
            assert now[: len(ids)] == ids and len(now) == len(ids) + 1
        expected = await server_state(box.admin, ["INBOX"])
        assert not state_differences(await stored_state(runtime, account_id), expected)
