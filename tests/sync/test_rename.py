"""A synced folder renamed on the server (in the user's mail client) stays synced under its
new name: the selection follows it, its messages keep their rows and ids, and nothing is
downloaded again; also when the server renumbers it on the way, and when the old name comes
back empty (Dovecot re-creates its special-use folders)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.models import Folder, MailAccount, Message
from core.runtime import Runtime
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import QuirksProxy
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
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]


@dataclass
class Stored:
    labels: list[str]
    folders: dict[str, tuple[uuid.UUID, bool]]  # name: (id, selected)
    rows: dict[str, set[int]]  # folder name: message row ids


async def stored(runtime: Runtime, account_id: uuid.UUID) -> Stored:
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
        assert account is not None
        folders = list(await session.scalars(select(Folder).where(Folder.account_id == account_id)))
        rows = await session.execute(
            select(Folder.name, Message.id)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id)
        )
        by_folder: dict[str, set[int]] = {}
        for name, row_id in rows:
            by_folder.setdefault(name, set()).add(row_id)
    return Stored(sorted(account.labels), {f.name: (f.id, f.selected) for f in folders}, by_folder)


def bodies_fetched(proxy: QuirksProxy, since: int) -> list[str]:
    return [c.line for c in proxy.commands[since:] if "BODY.PEEK[]" in c.line]


async def test_a_renamed_folder_keeps_its_selection_and_its_messages(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        QuirksProxy(box.server.host, box.server.port) as proxy,
    ):
        await box.admin.create("Projects")
        now = datetime.now(UTC)
        await box.admin.append_many("Projects", [(make_message(f"p{i}"), now) for i in range(4)])
        account_id = await connect_and_start(
            gql.as_user(owner.token), seen_through(box, proxy), labels=["INBOX", "Projects"]
        )
        await sync_once(runtime, account_id)
        before = await stored(runtime, account_id)

        await box.admin.rename("Projects", "Projects 2024")
        mark = len(proxy.commands)
        result = await sync_once(runtime, account_id)
        after = await stored(runtime, account_id)
        assert after.labels == ["INBOX", "Projects 2024"]
        assert after.folders["Projects 2024"] == before.folders["Projects"]  # same row, selected
        assert "Projects" not in after.folders
        assert after.rows["Projects 2024"] == before.rows["Projects"]
        assert (result.counts.new, result.counts.removed) == (0, 0)
        assert bodies_fetched(proxy, mark) == []
        expected = await server_state(box.admin, ["INBOX", "Projects 2024"])
        assert not state_differences(await stored_state(runtime, account_id), expected)


async def test_a_renamed_special_folder_whose_name_comes_back_empty(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Archive -> "Archiv 2024": Dovecot creates an empty Archive again at once."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many("Archive", [(make_message(f"a{i}"), now) for i in range(3)])
        account_id = await connect_and_start(
            gql.as_user(owner.token), box, labels=["INBOX", "Archive"]
        )
        await sync_once(runtime, account_id)
        before = await stored(runtime, account_id)

        await box.admin.rename("Archive", "Archiv 2024")
        result = await sync_once(runtime, account_id)
        after = await stored(runtime, account_id)
        assert after.labels == ["Archiv 2024", "INBOX"]
        assert after.folders["Archiv 2024"] == before.folders["Archive"]
        assert after.rows["Archiv 2024"] == before.rows["Archive"]
        # Re-created by the server (auto = subscribe): a new folder, not selected.
        assert after.folders["Archive"][0] != before.folders["Archive"][0]
        assert after.folders["Archive"][1] is False
        assert (result.counts.new, result.counts.removed) == (0, 0)


async def test_a_folder_renamed_with_new_uids_keeps_its_rows(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """A server that renumbers on rename (here: the mail copied into a new folder and the
    old one deleted): the rows are found again by their fingerprint, no body downloaded."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        QuirksProxy(box.server.host, box.server.port) as proxy,
    ):
        await box.admin.create("Deals")
        now = datetime.now(UTC)
        await box.admin.append_many("Deals", [(make_message(f"d{i}"), now) for i in range(5)])
        account_id = await connect_and_start(
            gql.as_user(owner.token), seen_through(box, proxy), labels=["INBOX", "Deals"]
        )
        await sync_once(runtime, account_id)
        before = await stored(runtime, account_id)

        await box.admin.create("Deals 2024")
        for uid in await box.admin.uids("Deals"):
            await box.admin.copy("Deals", uid, "Deals 2024")
        await box.admin.delete("Deals")
        mark = len(proxy.commands)
        result = await sync_once(runtime, account_id)
        after = await stored(runtime, account_id)
        assert after.labels == ["Deals 2024", "INBOX"]
        assert after.folders["Deals 2024"] == before.folders["Deals"]
        assert after.rows["Deals 2024"] == before.rows["Deals"]
        assert (result.counts.new, result.counts.removed) == (0, 0)
        assert bodies_fetched(proxy, mark) == []
        expected = await server_state(box.admin, ["INBOX", "Deals 2024"])
        assert not state_differences(await stored_state(runtime, account_id), expected)
