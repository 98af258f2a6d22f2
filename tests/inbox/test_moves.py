"""Archive, move and delete against real IMAP servers: the inbox changes at once, the
sync job that follows does it on the server (UID MOVE, or COPY + \\Deleted + UID
EXPUNGE, never a plain EXPUNGE), no later sync flips it back or duplicates it, a
write-back the server keeps refusing is undone and explained, and a teammate's shared
mail cannot be moved."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from core.models import Message, Sharing
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import Quirks, QuirksProxy
from tests.support.inbox import seed_account, seed_messages
from tests.support.mailservers import ImapServer
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

LISTING = """
query($role: FolderRole) {
  inbox(filter: {folderRole: $role}) { edges { node { id subject writeBackError } } }
}"""
MOVE = """
mutation($ids: [ID!], $threads: [ID!], $to: MoveTargetInput!) {
  moveMessages(ids: $ids, threadIds: $threads, to: $to) {
    messages { id subject folder { role } }
    userErrors { code field message }
  }
}"""
DELETE = """
mutation($ids: [ID!]!) {
  deleteMessages(ids: $ids) { messages { id } userErrors { code field } }
}"""
THREAD = "query($id: ID!) { message(id: $id) { threadId } }"
# pymap's demo Trash is read-only: a Bin of our own is the TRASH folder (synced, so chosen).
FOLDERS = ["INBOX", "Archive", "Bin"]


@pytest_asyncio.fixture(params=["dovecot", "pymap"])
async def mailbox(
    request: pytest.FixtureRequest, dovecot: ImapServer, tmp_path: Path
) -> AsyncIterator[Mailbox]:
    async with private_mailbox(request.param, dovecot, tmp_path) as box:
        yield box


async def _account(client: GraphQLClient, runtime: Runtime, box: Mailbox) -> uuid.UUID:
    """Three messages in INBOX; INBOX, Archive and Bin synced."""
    for folder in FOLDERS[1:]:
        await box.admin.create(folder)  # NO when it exists already: fine
    now = datetime.now(UTC)
    await box.admin.append_many(
        "INBOX", [(make_message(s), now) for s in ("keep", "archive me", "trash me")]
    )
    account_id = await connect_and_start(client, box, labels=FOLDERS)
    await sync_once(runtime, account_id)
    return account_id


async def _listing(client: GraphQLClient, role: str) -> dict[str, str]:
    """{subject: id} of a folder role's listing, for the test's messages."""
    edges = (await client.execute(LISTING, {"role": role}))["inbox"]["edges"]
    mine = ("keep", "archive me", "trash me")
    return {e["node"]["subject"]: e["node"]["id"] for e in edges if e["node"]["subject"] in mine}


async def _subjects_on_server(box: Mailbox, folder: str, *, hidden: bool = False) -> list[str]:
    """Subjects of the folder's messages on the server (without \\Deleted ones unless
    ``hidden``)."""
    flags = await box.admin.flags(folder)
    raws = await box.admin.fetch_raw(folder)
    found = []
    for (_, f), raw in zip(sorted(flags.items()), raws, strict=True):
        if "\\Deleted" in f and not hidden:
            continue
        for line in raw.split(b"\n"):
            if line.lower().startswith(b"subject:"):
                found.append(line.split(b":", 1)[1].strip().decode())
    return sorted(s for s in found if s in ("keep", "archive me", "trash me"))


async def _rows(runtime: Runtime, account_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.account_id == account_id, Message.is_deleted.is_(False))
            )
            or 0
        )


async def _move(client: GraphQLClient, **variables: Any) -> list[dict[str, Any]]:
    moved = (await client.execute(MOVE, variables))["moveMessages"]
    assert moved["userErrors"] == [], moved
    messages: list[dict[str, Any]] = moved["messages"]
    return messages


async def test_archive_trash_and_delete_reach_the_server_and_stay(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, mailbox: Mailbox
) -> None:
    client = gql.as_user((await new_user()).token)
    account_id = await _account(client, runtime, mailbox)
    inbox = await _listing(client, "INBOX")
    assert sorted(inbox) == ["archive me", "keep", "trash me"]

    archived = await _move(client, ids=[inbox["archive me"]], to={"role": "ARCHIVE"})
    assert [(m["id"], m["folder"]["role"]) for m in archived] == [(inbox["archive me"], "ARCHIVE")]
    thread = (await client.execute(THREAD, {"id": inbox["trash me"]}))["message"]["threadId"]
    trashed = await _move(client, threads=[thread], to={"role": "TRASH"})
    assert [m["subject"] for m in trashed] == ["trash me"]
    # At once, before any sync: the listings show the new places, same ids.
    assert await _listing(client, "INBOX") == {"keep": inbox["keep"]}
    assert await _listing(client, "ARCHIVE") == {"archive me": inbox["archive me"]}
    assert await _listing(client, "TRASH") == {"trash me": inbox["trash me"]}
    assert await _subjects_on_server(mailbox, "INBOX") == ["archive me", "keep", "trash me"]

    await sync_once(runtime, account_id)  # the job markMessages-style requests queue
    assert await _subjects_on_server(mailbox, "INBOX") == ["keep"]
    assert await _subjects_on_server(mailbox, "Archive") == ["archive me"]
    assert await _subjects_on_server(mailbox, "Bin") == ["trash me"]
    for _ in range(2):  # later syncs neither flip it back nor duplicate it
        await sync_once(runtime, account_id)
        assert await _listing(client, "INBOX") == {"keep": inbox["keep"]}
        assert await _listing(client, "ARCHIVE") == {"archive me": inbox["archive me"]}
        assert await _listing(client, "TRASH") == {"trash me": inbox["trash me"]}
        assert await _rows(runtime, account_id) == 3 + _demo_mail(mailbox)
    stored = await stored_state(runtime, account_id)
    assert state_differences(stored, await server_state(mailbox.admin, FOLDERS)) == []

    # Only Trash is deleted for good.
    refused = (await client.execute(DELETE, {"ids": [inbox["keep"]]}))["deleteMessages"]
    assert refused["userErrors"] == [{"code": "INVALID_INPUT", "field": "ids[0]"}]
    deleted = (await client.execute(DELETE, {"ids": [inbox["trash me"]]}))["deleteMessages"]
    assert deleted["userErrors"] == []
    assert await _listing(client, "TRASH") == {}
    await sync_once(runtime, account_id)
    assert await _subjects_on_server(mailbox, "Bin", hidden=True) == []
    await sync_once(runtime, account_id)
    assert await _listing(client, "TRASH") == {}
    assert await _rows(runtime, account_id) == 2 + _demo_mail(mailbox)


def _demo_mail(box: Mailbox) -> int:
    """pymap's demo data: 4 in INBOX, synced too."""
    return 4 if box.server.name == "pymap" else 0


@pytest.mark.parametrize("hidden", [("MOVE",), ("MOVE", "UIDPLUS")], ids=["no-move", "neither"])
async def test_without_move_copy_then_delete_never_a_plain_expunge(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
    hidden: tuple[str, ...],
) -> None:
    client = gql.as_user((await new_user()).token)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        QuirksProxy(direct.server.host, direct.server.port, Quirks(hide=hidden)) as proxy,
    ):
        # Another client's mail marked \Deleted in INBOX: a plain EXPUNGE would remove it.
        await direct.admin.append("INBOX", make_message("not ours"), flags="\\Deleted")
        box = seen_through(direct, proxy)
        account_id = await _account(client, runtime, box)
        inbox = await _listing(client, "INBOX")
        await _move(client, ids=[inbox["archive me"]], to={"role": "ARCHIVE"})
        start = len(proxy.commands)
        await sync_once(runtime, account_id)
        sent = proxy.names(start)
        assert "UID MOVE" not in sent and "EXPUNGE" not in sent
        assert "UID COPY" in sent
        assert ("UID EXPUNGE" in sent) == ("UIDPLUS" not in hidden)
        assert await _subjects_on_server(direct, "Archive") == ["archive me"]
        assert await _subjects_on_server(direct, "INBOX") == ["keep", "trash me"]
        left = await _subjects_on_server(direct, "INBOX", hidden=True)
        # Without UIDPLUS the source copy stays, marked \Deleted (hidden everywhere).
        assert ("archive me" in left) == ("UIDPLUS" in hidden)
        assert len(await direct.admin.search("INBOX", "DELETED")) >= 1  # "not ours" is kept
        for _ in range(2):
            await sync_once(runtime, account_id)
            assert await _listing(client, "INBOX") == {
                "keep": inbox["keep"],
                "trash me": inbox["trash me"],
            }
            assert await _listing(client, "ARCHIVE") == {"archive me": inbox["archive me"]}


async def test_a_refused_write_back_is_retried_then_undone_and_explained(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    client = gql.as_user((await new_user()).token)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        QuirksProxy(direct.server.host, direct.server.port) as proxy,
    ):
        account_id = await _account(client, runtime, seen_through(direct, proxy))
        inbox = await _listing(client, "INBOX")
        await _move(client, ids=[inbox["archive me"]], to={"role": "ARCHIVE"})
        for attempt in range(3):
            proxy.refuse("UID MOVE")
            await sync_once(runtime, account_id)
            shown = await _listing(client, "ARCHIVE")
            assert ("archive me" in shown) == (attempt < 2), attempt
        # Undone: back in INBOX, where the server still has it, with the reason.
        edges = (await client.execute(LISTING, {"role": "INBOX"}))["inbox"]["edges"]
        [node] = [e["node"] for e in edges if e["node"]["subject"] == "archive me"]
        assert node["id"] == inbox["archive me"]
        assert "refused" in node["writeBackError"]
        await sync_once(runtime, account_id)
        assert await _subjects_on_server(direct, "INBOX") == ["archive me", "keep", "trash me"]
        assert await _rows(runtime, account_id) == 3


async def test_only_the_owner_moves_and_every_id_is_checked(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    owner = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    shared = await seed_account(runtime, owner, sharing=Sharing.SHARED)
    [row] = await seed_messages(runtime, shared, [{}])
    message_id = runtime.message_ids.encode(row)
    viewer = gql.as_user(teammate.token)
    forbidden = (await viewer.execute(MOVE, {"ids": [message_id], "to": {"role": "INBOX"}}))[
        "moveMessages"
    ]
    assert [e["code"] for e in forbidden["userErrors"]] == ["FORBIDDEN"]
    denied = (await viewer.execute(DELETE, {"ids": [message_id]}))["deleteMessages"]
    assert [e["code"] for e in denied["userErrors"]] == ["FORBIDDEN"]
    owner_client = gql.as_user(owner.token)
    missing = (await owner_client.execute(MOVE, {"ids": [message_id], "to": {"role": "ARCHIVE"}}))[
        "moveMessages"
    ]
    assert [(e["code"], e["field"]) for e in missing["userErrors"]] == [("NOT_FOUND", "to.role")]
    both = (
        await owner_client.execute(
            MOVE, {"ids": [message_id], "to": {"role": "ARCHIVE", "folderId": str(uuid.uuid4())}}
        )
    )["moveMessages"]
    assert [e["code"] for e in both["userErrors"]] == ["INVALID_INPUT"]
