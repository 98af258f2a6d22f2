"""markMessages against real IMAP servers: the rows change at once, the server's flags
change in the sync job that follows, and no later sync flips them back."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from core.accounts import credentials
from core.jobs import sync_job_id
from core.mail.imap import imap_session
from core.mail.mailbox import MailboxOps
from core.models import AccountStatus, MailAccount, Message, PastSync
from core.runtime import Runtime
from core.settings import Settings
from core.sync import repository
from core.sync.folder import AccountContext, FolderSync
from core.sync.run import AccountSyncRun
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import INBOX, MARK
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    EVERY_RUN,
    Mailbox,
    burst_worker,
    connect_and_start,
    private_mailbox,
    sync_once,
)
from tests.support.tcp_proxy import CuttingProxy
from tests.sync.test_sync_engine import make_message

ACCOUNT = "query($id: ID!) { mailAccount(id: $id) { status lastError } }"


@pytest_asyncio.fixture(params=["dovecot", "pymap"])
async def mailbox(
    request: pytest.FixtureRequest, dovecot: ImapServer, tmp_path: Path
) -> AsyncIterator[Mailbox]:
    async with private_mailbox(request.param, dovecot, tmp_path) as box:
        yield box


async def _synced_inbox(
    client: GraphQLClient, runtime: Runtime, box: Mailbox, count: int
) -> tuple[uuid.UUID, dict[str, str]]:
    """An account with ``count`` unread messages synced; {subject: message id}."""
    now = datetime.now(UTC)
    await box.admin.append_many("INBOX", [(make_message(f"mark {i}"), now) for i in range(count)])
    account_id = await connect_and_start(client, box, labels=["INBOX"])
    await sync_once(runtime, account_id)
    edges = (await client.execute(INBOX, {"first": 100}))["inbox"]["edges"]
    ids = {e["node"]["subject"]: e["node"]["id"] for e in edges}
    return account_id, {s: i for s, i in ids.items() if s.startswith("mark ")}


async def _server_flags(box: Mailbox, folder: str = "INBOX") -> dict[str, set[str]]:
    """{subject: flags} of a folder on the server."""
    flags = await box.admin.flags(folder)
    subjects = await _uid_subjects(box, folder)
    return {subjects[uid]: f & {"\\Seen", "\\Flagged"} for uid, f in flags.items()}


async def _uid_subjects(box: Mailbox, folder: str = "INBOX") -> dict[int, str]:
    uids = sorted((await box.admin.flags(folder)).keys())
    raws = await box.admin.fetch_raw(folder)
    found: dict[int, str] = {}
    for uid, raw in zip(uids, raws, strict=True):
        for line in raw.split(b"\n"):
            if line.lower().startswith(b"subject:"):
                found[uid] = line.split(b":", 1)[1].strip().decode()
    return found


async def _stored(runtime: Runtime, account_id: uuid.UUID) -> dict[str, tuple[bool, bool, bool]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(
                Message.subject,
                Message.is_read,
                Message.is_flagged,
                Message.read_pending | Message.flagged_pending,
            ).where(Message.account_id == account_id)
        )
    return {str(subject): (read, flagged, pending) for subject, read, flagged, pending in rows}


async def test_marks_reach_the_server_in_a_job_and_stay(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    mailbox: Mailbox,
    make_settings: Callable[..., Settings],
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id, ids = await _synced_inbox(client, runtime, mailbox, 3)
    assert (await _server_flags(mailbox))["mark 0"] == set()

    marked = await client.execute(MARK, {"ids": [ids["mark 0"], ids["mark 1"]], "read": True})
    assert marked["markMessages"]["userErrors"] == []
    flagged = await client.execute(MARK, {"ids": [ids["mark 1"]], "flagged": True})
    assert flagged["markMessages"]["messages"] == [
        {"id": ids["mark 1"], "isRead": True, "isFlagged": True}
    ]
    # At once in the inbox; the server has not been told yet; a sync job is queued.
    unread = await client.execute(INBOX, {"filter": {"unread": True}})
    assert [
        e["node"]["id"] for e in unread["inbox"]["edges"] if e["node"]["id"] in ids.values()
    ] == [ids["mark 2"]]
    assert (await _server_flags(mailbox))["mark 0"] == set()
    assert await runtime.redis.exists(f"arq:job:{sync_job_id(account_id)}")

    await burst_worker(make_settings())

    server = await _server_flags(mailbox)
    assert {s: server[s] for s in ids} == {
        "mark 0": {"\\Seen"},
        "mark 1": {"\\Seen", "\\Flagged"},
        "mark 2": set(),
    }
    expected = {
        "mark 0": (True, False, False),
        "mark 1": (True, True, False),
        "mark 2": (False, False, False),
    }
    stored = await _stored(runtime, account_id)
    assert {s: stored[s] for s in ids} == expected

    # Later syncs keep them, and still follow changes made on the server.
    await sync_once(runtime, account_id)
    stored = await _stored(runtime, account_id)
    assert {s: stored[s] for s in ids} == expected
    subjects_by_uid = {v: k for k, v in (await _uid_subjects(mailbox)).items()}
    await mailbox.admin.store("INBOX", subjects_by_uid["mark 0"], "-FLAGS", "\\Seen")
    await sync_once(runtime, account_id)
    stored = await _stored(runtime, account_id)
    assert stored["mark 0"] == (False, False, False)


async def test_a_sync_before_the_write_back_does_not_flip_marks_back(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    """The server still says unread while the mark waits: the local mark wins until it is
    written, even through a full flag scan."""
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        user = await new_user()
        client = gql.as_user(user.token)
        account_id, ids = await _synced_inbox(client, runtime, box, 2)
        await client.execute(MARK, {"ids": [ids["mark 0"]], "read": True, "flagged": True})
        async with runtime.session_factory() as session:
            dirty = await session.scalar(
                select(Message.read_pending & Message.flagged_pending).where(
                    Message.id == runtime.message_ids.decode(ids["mark 0"])
                )
            )
        assert dirty is True
        # The folder sync alone (no write-back) must not undo the mark.
        async with runtime.session_factory() as session:
            account = await session.get(MailAccount, account_id)
            assert account is not None
            folders = await repository.selected_checkpoints(session, account_id)
            login = credentials.imap_login(runtime.key_ring, account)
        async with imap_session(login, runtime.mail_options) as connection:
            ops = MailboxOps(connection)
            await ops.enable_extensions()
            context = AccountContext(account_id, user.id, PastSync.ALL)
            await FolderSync(
                runtime.session_factory, ops, context, folders[0], EVERY_RUN, _no_progress
            ).run()
        stored = await _stored(runtime, account_id)
        assert stored["mark 0"] == (True, True, True)
        # The full run writes it back and the row is clean again.
        await sync_once(runtime, account_id)
        assert (await _stored(runtime, account_id))["mark 0"] == (True, True, False)
        assert (await _server_flags(box))["mark 0"] == {"\\Seen", "\\Flagged"}


async def test_a_failed_write_back_is_reported_and_retried(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as direct,
        CuttingProxy(dovecot.host, dovecot.port) as proxy,
    ):
        box = dataclasses.replace(
            direct, server=dataclasses.replace(direct.server, host=proxy.host, port=proxy.port)
        )
        user = await new_user()
        client = gql.as_user(user.token)
        account_id, ids = await _synced_inbox(client, runtime, box, 1)
        await client.execute(MARK, {"ids": [ids["mark 0"]], "read": True})

        proxy.arm(0, "reset")  # the next connection drops before the server's greeting
        assert await AccountSyncRun(runtime, account_id, EVERY_RUN).run() is None
        account: dict[str, Any] = (await client.execute(ACCOUNT, {"id": str(account_id)}))[
            "mailAccount"
        ]
        assert account["status"] == AccountStatus.ERROR.value
        assert account["lastError"]
        assert (await _stored(runtime, account_id))["mark 0"] == (True, False, True)
        assert (await _server_flags(direct))["mark 0"] == set()

        # The retry (the scheduler's backoff; run directly here) writes it back.
        await sync_once(runtime, account_id)
        assert (await _server_flags(direct))["mark 0"] == {"\\Seen"}
        assert (await _stored(runtime, account_id))["mark 0"] == (True, False, False)
        account = (await client.execute(ACCOUNT, {"id": str(account_id)}))["mailAccount"]
        assert account == {"status": "ACTIVE", "lastError": None}


async def _no_progress(folder: str, fetched: int, total: int) -> None:
    return None


async def test_only_the_changed_flag_is_written_back(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    """Marked read here while another client flagged it: both survive."""
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        user = await new_user()
        client = gql.as_user(user.token)
        account_id, ids = await _synced_inbox(client, runtime, box, 1)
        await client.execute(MARK, {"ids": [ids["mark 0"]], "read": True})
        [uid] = await box.admin.uids("INBOX")
        await box.admin.store("INBOX", uid, "+FLAGS", "\\Flagged")  # e.g. in Outlook

        await sync_once(runtime, account_id)
        assert (await _server_flags(box))["mark 0"] == {"\\Seen", "\\Flagged"}
        assert (await _stored(runtime, account_id))["mark 0"] == (True, True, False)


async def test_marks_survive_a_uidvalidity_change_and_reach_the_renumbered_message(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        raws = [make_message(f"mark {i}") for i in range(3)]
        await box.admin.create("Projects")
        await box.admin.append_many("Projects", [(raw, now) for raw in raws])
        user = await new_user()
        client = gql.as_user(user.token)
        account_id = await connect_and_start(client, box, labels=["Projects"])
        await sync_once(runtime, account_id)
        edges = (await client.execute(INBOX, {"filter": {"folderRole": "OTHER"}}))["inbox"]
        ids = {e["node"]["subject"]: e["node"]["id"] for e in edges["edges"]}
        await client.execute(MARK, {"ids": [ids["mark 2"]], "read": True})

        # Recreated with the same mail in another order: a new UIDVALIDITY, and the UID
        # that "mark 2" had now names another message.
        before = await box.admin.uidvalidity("Projects")
        await box.admin.delete("Projects")
        await box.admin.create("Projects")
        await box.admin.append_many("Projects", [(raw, now) for raw in reversed(raws)])
        assert await box.admin.uidvalidity("Projects") != before

        await sync_once(runtime, account_id)  # re-keys the rows; the mark stays pending
        await sync_once(runtime, account_id)  # writes it to the right message
        server = await _server_flags(box, "Projects")
        assert server == {"mark 0": set(), "mark 1": set(), "mark 2": {"\\Seen"}}
        assert await _stored(runtime, account_id) == {
            "mark 0": (False, False, False),
            "mark 1": (False, False, False),
            "mark 2": (True, False, False),
        }
