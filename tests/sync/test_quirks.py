"""The sync against servers that bend the IMAP rules (a quirks proxy in front of Dovecot),
and the self-check that heals a store that drifted from the server, whatever the cause."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update

from core.db import session_scope
from core.models import Folder, Message
from core.runtime import Runtime
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_admin import ImapAdmin
from tests.support.imap_quirks import Quirks, QuirksProxy
from tests.support.mailservers import ImapServer
from tests.support.statements import recorded_statements
from tests.support.sync import (
    Mailbox,
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
FOLDERS = ["INBOX", "Projects", "Sent"]


@asynccontextmanager
async def behind_quirks(box: Mailbox, quirks: Quirks) -> AsyncIterator[tuple[Mailbox, QuirksProxy]]:
    """The mailbox as the account sees it through a proxy with ``quirks``."""
    async with QuirksProxy(box.server.host, box.server.port, quirks) as proxy:
        yield seen_through(box, proxy), proxy


def mail(prefix: str, count: int) -> list[tuple[bytes, datetime]]:
    now = datetime.now(UTC)
    return [(make_message(f"{prefix} {i}"), now) for i in range(count)]


async def test_a_no_change_pass_without_uidnext_in_select_is_one_status_per_folder(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Courier's SELECT has no UIDNEXT (RFC 3501 allows it): the UIDNEXT that STATUS
    reported is kept, so an untouched folder costs one STATUS and no write."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        behind_quirks(box, Quirks(strip_uidnext=True)) as (seen, proxy),
    ):
        await box.admin.create("Projects")
        for folder in FOLDERS:
            await box.admin.append_many(folder, mail(folder, 3))
        account_id = await connect_and_start(gql.as_user(owner.token), seen, labels=FOLDERS)
        await sync_once(runtime, account_id)
        await sync_once(runtime, account_id)  # whatever a first pass may still settle
        assert proxy.rewritten > 0  # SELECT really came without UIDNEXT

        mark = len(proxy.commands)
        with recorded_statements(runtime.engine) as statements:
            result = await sync_once(runtime, account_id)
        names = proxy.names(mark)
    assert (result.counts.new, result.counts.updated, result.counts.removed) == (0, 0, 0)
    mailbox_commands = [n for n in names if n not in ("CAPABILITY", "LOGIN", "ENABLE", "LIST")]
    assert mailbox_commands == ["STATUS"] * len(FOLDERS) + ["LOGOUT"], " ".join(names)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "DELETE"))]
    folder_writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE FOLDERS")]
    assert not writes and not folder_writes, statements


async def test_new_mail_is_found_when_uid_search_answers_by_sequence_numbers(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Mailutils answers UID SEARCH UID n:* as if n:* were positions: with UIDs far above
    the message count, most new mail is outside that range and was never fetched."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        behind_quirks(box, Quirks(search_by_sequence=True)) as (seen, _proxy),
    ):
        await box.admin.create("Projects")
        await box.admin.append_many("INBOX", mail("old", 10))
        await box.admin.append_many("Projects", mail("filed", 5))
        account_id = await connect_and_start(
            gql.as_user(owner.token), seen, labels=["INBOX", "Projects"]
        )
        await sync_once(runtime, account_id)
        for uid in (await box.admin.uids("INBOX"))[:6]:
            await box.admin.expunge("INBOX", uid)  # 4 left, the highest UID is 10
        for uid in (await box.admin.uids("Projects"))[:4]:
            await box.admin.expunge("Projects", uid)  # 1 left, the highest UID is 5
        await box.admin.append_many("INBOX", mail("new", 14))
        for uid in (await box.admin.uids("INBOX"))[-4:]:
            await box.admin.copy("INBOX", uid, "Projects")

        # Through the proxy, UID SEARCH UID 11:* misses most of the new mail, as on Mailutils.
        through = ImapAdmin(seen.server, seen.username, seen.password)
        searched = await through.search("INBOX", "UID 11:*")
        assert len(searched) < 14, searched

        result = await sync_once(runtime, account_id)
        expected = await server_state(box.admin, ["INBOX", "Projects"])
        assert not state_differences(await stored_state(runtime, account_id), expected)
        assert result.counts.new == 14 + 4


async def _folder_id(runtime: Runtime, account_id: uuid.UUID, name: str) -> uuid.UUID:
    async with runtime.session_factory() as session:
        found = await session.scalar(
            select(Folder.id).where(Folder.account_id == account_id, Folder.name == name)
        )
    assert found is not None
    return found


async def test_the_self_check_heals_a_store_that_drifted_from_the_server(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Rows lost, rows the server never had, a flag changed behind the sync's back: the
    next run sees that the folder's count differs from the server's and reconciles by
    UIDs alone (no bodies are fetched again except the missing one)."""
    owner = await new_user()
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        behind_quirks(box, Quirks()) as (seen, proxy),
    ):
        await box.admin.append_many("INBOX", mail("kept", 6))
        account_id = await connect_and_start(gql.as_user(owner.token), seen, labels=["INBOX"])
        await sync_once(runtime, account_id)
        expected = await server_state(box.admin, ["INBOX"])
        folder_id = await _folder_id(runtime, account_id, "INBOX")
        uids = sorted(expected["INBOX"])

        # A row lost, and another one's flag changed.
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                delete(Message).where(Message.folder_id == folder_id, Message.uid == uids[1])
            )
            await session.execute(
                update(Message)
                .where(Message.folder_id == folder_id, Message.uid == uids[3])
                .values(is_read=True, is_flagged=True)
            )
        mark = len(proxy.commands)
        await sync_once(runtime, account_id)
        assert not state_differences(await stored_state(runtime, account_id), expected)
        body_fetches = [c.line for c in proxy.commands[mark:] if "BODY.PEEK[]" in c.line]
        assert len(body_fetches) == 1 and f" {uids[1]} " in body_fetches[0], body_fetches

        # A row the server never had (a copy of another one under an unused UID).
        async with session_scope(runtime.session_factory) as session:
            source = await session.scalar(
                select(Message).where(Message.folder_id == folder_id, Message.uid == uids[0])
            )
            assert source is not None
            columns = {
                c.key: getattr(source, c.key)
                for c in Message.__table__.columns
                if c.key not in ("id", "search_vector", "created_at")
            }
            await session.execute(insert(Message).values({**columns, "uid": uids[-1] + 100}))
        await sync_once(runtime, account_id)
        assert not state_differences(await stored_state(runtime, account_id), expected)
        async with runtime.session_factory() as session:
            counts = (
                await session.execute(
                    select(Folder.message_count, func.count(Message.id))
                    .join(Message, Message.folder_id == Folder.id)
                    .where(Folder.id == folder_id)
                    .group_by(Folder.message_count)
                )
            ).one()
        assert tuple(counts) == (6, 6)
