"""Helpers for sync tests: a private mailbox per test, running a sync, comparing states."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from core.models import Folder, Message
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from core.sync.folder import SyncTuning
from core.sync.run import AccountSyncRun, RunResult
from tests.support.graphql import GraphQLClient
from tests.support.imap_admin import ImapAdmin
from tests.support.mailservers import ImapServer, start_pymap
from workers.arq_worker import build_worker, run_until_done

_users = itertools.count(1)
EVERY_RUN = SyncTuning(full_flag_scan_every=timedelta(0))


@dataclass
class Mailbox:
    server: ImapServer
    username: str
    password: str
    admin: ImapAdmin

    def imap_input(self) -> dict[str, Any]:
        return {
            "host": self.server.host,
            "port": self.server.port,
            "security": "NONE",
            "username": self.username,
            "password": self.password,
        }


class _Proxy(Protocol):
    host: str
    port: int


def seen_through(box: Mailbox, proxy: _Proxy) -> Mailbox:
    """The mailbox as a client reaches it through ``proxy`` (the admin stays direct)."""
    server = dataclasses.replace(box.server, host=proxy.host, port=proxy.port)
    return Mailbox(server, box.username, box.password, box.admin)


@asynccontextmanager
async def private_mailbox(kind: str, dovecot: ImapServer, workdir: Path) -> AsyncIterator[Mailbox]:
    """A new Dovecot user, or a fresh pymap (its demo data: INBOX 4, Sent 2, Trash 1)."""
    if kind == "dovecot":
        name, password = f"sync{next(_users)}-{uuid.uuid4().hex[:6]}@example.test", "pw-sync"
        dovecot.add_user(name, password)
        yield Mailbox(dovecot, name, password, ImapAdmin(dovecot, name, password))
        return
    server = start_pymap(workdir)
    try:
        yield Mailbox(
            server,
            server.username,
            server.password,
            ImapAdmin(server, server.username, server.password),
        )
    finally:
        server.stop()


ADD = """
mutation($input: AddMailAccountInput!) {
  addMailAccount(input: $input) { account { id } userErrors { code message } }
}"""
START = """
mutation($input: StartSyncInput!) {
  startSync(input: $input) { account { id status labels pastSync } userErrors { code field } }
}"""


async def connect_and_start(
    client: GraphQLClient,
    mailbox: Mailbox,
    *,
    labels: list[str] | None = None,
    past_sync: str = "ALL",
) -> uuid.UUID:
    added = await client.execute(
        ADD,
        {
            "input": {
                "emailAddress": f"box{uuid.uuid4().hex[:8]}@example.com",
                "imap": mailbox.imap_input(),
            }
        },
    )
    assert added["addMailAccount"]["userErrors"] == [], added
    account_id = added["addMailAccount"]["account"]["id"]
    started = await client.execute(
        START, {"input": {"accountId": account_id, "labels": labels, "pastSync": past_sync}}
    )
    assert started["startSync"]["userErrors"] == [], started
    assert started["startSync"]["account"]["status"] == "SYNCING"
    return uuid.UUID(account_id)


async def burst_worker(settings: Settings) -> None:
    """Run an arq worker, with its own connections, until its queue is empty."""
    async with open_runtime(settings) as worker_runtime:
        await run_until_done(build_worker(worker_runtime, burst=True), worker_runtime)


async def start_and_sync(client: GraphQLClient, runtime: Runtime, account_id: str) -> None:
    """startSync (all past mail) on an added account, then one sync run."""
    started = await client.execute(START, {"input": {"accountId": account_id, "pastSync": "ALL"}})
    assert started["startSync"]["userErrors"] == [], started
    await sync_once(runtime, uuid.UUID(account_id))


async def sync_once(runtime: Runtime, account_id: uuid.UUID) -> RunResult:
    result = await AccountSyncRun(runtime, account_id, EVERY_RUN).run()
    assert result is not None, "the sync did not run"
    return result


async def stored_state(
    runtime: Runtime, account_id: uuid.UUID
) -> dict[str, dict[int, tuple[bool, bool, bool]]]:
    """{folder name: {uid: (read, flagged, answered)}} for the account's selected folders."""
    async with runtime.session_factory() as session:
        folders = list(
            await session.scalars(
                select(Folder).where(Folder.account_id == account_id, Folder.selected.is_(True))
            )
        )
        state: dict[str, dict[int, tuple[bool, bool, bool]]] = {f.name: {} for f in folders}
        names = {f.id: f.name for f in folders}
        rows = await session.execute(
            select(
                Message.folder_id,
                Message.uid,
                Message.is_read,
                Message.is_flagged,
                Message.is_answered,
            ).where(Message.account_id == account_id)
        )
        for folder_id, uid, read, flagged, answered in rows:
            state[names[folder_id]][uid] = (read, flagged, answered)
    return state


async def server_state(
    admin: ImapAdmin, folders: list[str]
) -> dict[str, dict[int, tuple[bool, bool, bool]]]:
    state: dict[str, dict[int, tuple[bool, bool, bool]]] = {}
    for folder in folders:
        flags = await admin.flags(folder)
        state[folder] = {
            uid: ("\\Seen" in f, "\\Flagged" in f, "\\Answered" in f) for uid, f in flags.items()
        }
    return state


Flags3 = tuple[bool, bool, bool]


def state_differences(
    stored: dict[str, dict[int, Flags3]], expected: dict[str, dict[int, Flags3]]
) -> list[str]:
    """Every way ``stored`` differs from ``expected`` ({folder: {uid: flags}}), in words."""
    problems = []
    for folder in sorted(set(stored) | set(expected)):
        mine, theirs = stored.get(folder, {}), expected.get(folder, {})
        if missing := sorted(set(theirs) - set(mine)):
            problems.append(f"{folder}: missing uids {missing}")
        if extra := sorted(set(mine) - set(theirs)):
            problems.append(f"{folder}: extra uids {extra}")
        wrong = {u: (mine[u], theirs[u]) for u in sorted(set(mine) & set(theirs))}
        wrong = {u: pair for u, pair in wrong.items() if pair[0] != pair[1]}
        if wrong:
            problems.append(f"{folder}: flags (read, flagged, answered) stored vs server {wrong}")
    return problems
