"""Differential test of the sync engine: random server-side changes, one sync after each,
and the store compared with the server every time.

Each case is a seeded random sequence of changes on a mailbox with three synced folders
(INBOX, Projects, Sent) and two more that are selected later (Clients, Partners): appends
(corpus mail, random INTERNALDATE, sometimes with flags, sometimes in bulk), flag sets and
clears, deletions, moves between synced folders, selecting a further folder through the
``updateMailAccount`` mutation, and a UIDVALIDITY reset (the folder deleted and recreated
with the same mail, its flags kept or lost, sometimes with one more message). After every
step one sync runs and the store must equal the server: per selected folder the UIDs, their
(read, flagged, answered) flags and Message-IDs, the folder counts, no Message-ID twice.

Dovecot takes the QRESYNC path, Dovecot behind a proxy that hides QRESYNC the CONDSTORE
path, pymap (neither) the full-scan fallback; then Dovecot behind each quirk of
``tests/support/imap_quirks.py`` (no UIDNEXT in SELECT, UID SEARCH UID by positions, a new
UIDVALIDITY on every APPEND, no UIDPLUS/ENABLE/MOVE), the test's own changes going through
the same proxy. A case is deterministic for its seed: a failure names the seed and lists
every step, and ``pytest tests/sync/test_differential.py -k "condstore-111"`` replays it.
"""

from __future__ import annotations

import asyncio
import imaplib
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from core.models import AccountStatus, Folder, MailAccount, Message
from core.runtime import Runtime
from core.sync.run import AccountSyncRun
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.imap_quirks import Quirks, QuirksProxy
from tests.support.mail_corpus import realistic_message
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    EVERY_RUN,
    Mailbox,
    connect_and_start,
    private_mailbox,
    seen_through,
    server_state,
    state_differences,
    stored_state,
    sync_once,
)

T = TypeVar("T")
Flags3 = tuple[bool, bool, bool]
ServerFolder = dict[int, tuple[frozenset[str], str | None]]  # uid: (flags, Message-ID)


@dataclass(frozen=True)
class Route:
    """How the account sees the server: which one, through which quirks (None: direct)."""

    server: str  # "dovecot" or "pymap"
    quirks: Quirks | None
    modseq: bool  # CONDSTORE (or QRESYNC) in use, so MODSEQs are kept


# The engine's three paths for flags and deletions: Dovecot with QRESYNC (SELECT ...
# QRESYNC), Dovecot seen through a proxy that hides QRESYNC (CONDSTORE's CHANGEDSINCE),
# pymap (neither: full flag scans); then Dovecot behind each quirk of servers seen in the
# field (tests/support/imap_quirks.py): no UIDNEXT in SELECT (Courier), UID SEARCH UID by
# positions and a new UIDVALIDITY on every APPEND (Mailutils), no UIDPLUS, ENABLE, MOVE.
# 2 x 45 + 2 x 45 + 2 x 35 + 4 x 25 = 350 synced steps.
PATHS = {
    "qresync": Route("dovecot", None, modseq=True),
    "condstore": Route("dovecot", Quirks(hide=("QRESYNC",)), modseq=True),
    "fallback": Route("pymap", None, modseq=False),
    "no-uidnext": Route("dovecot", Quirks(strip_uidnext=True), modseq=True),
    "seq-search": Route("dovecot", Quirks(search_by_sequence=True), modseq=True),
    "uidvalidity-bump": Route("dovecot", Quirks(bump_uidvalidity=True), modseq=False),
    "bare": Route("dovecot", Quirks(hide=("UIDPLUS", "ENABLE", "MOVE")), modseq=False),
}
SEEDS = {
    "qresync": (101, 102),
    "condstore": (111, 112),
    "fallback": (201, 202),
    "no-uidnext": (301,),
    "seq-search": (311,),
    "uidvalidity-bump": (321,),
    "bare": (331,),
}
STEPS = {"qresync": 45, "condstore": 45, "fallback": 35}
QUIRK_STEPS = 25
CASES = [(path, seed) for path, seeds in SEEDS.items() for seed in seeds]

SYNCED = ["INBOX", "Projects", "Sent"]
LATER = ["Clients", "Partners"]  # on the server from the start, selected during the run
SYSTEM_FLAGS = ("\\Seen", "\\Flagged", "\\Answered")
WINDOW = timedelta(days=700)

_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE ("[^"]+")')
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
_RECORD_START = re.compile(rb"^\d+ \(")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_UID_SEARCH_UID = re.compile(r"\bUID SEARCH (?:CHARSET \S+ )?UID\b", re.IGNORECASE)

UPDATE_LABELS = """
mutation($input: UpdateMailAccountInput!) {
  updateMailAccount(input: $input) { account { labels } userErrors { code field message } }
}"""
ACCOUNT_FOLDERS = """
query($id: ID!) {
  mailAccount(id: $id) {
    status lastError messageCount
    folders { name selected messageCount unreadCount }
  }
}"""


# -- a long-lived admin session -------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


def _records(data: list[Any]) -> list[tuple[bytes, bytes | None]]:
    """imaplib's FETCH answer as (metadata, literal) per message, whatever the item order."""
    records: list[list[Any]] = []
    for part in data:
        if isinstance(part, tuple):
            records.append([part[0], part[1]])
        elif isinstance(part, bytes) and (_RECORD_START.match(part) or not records):
            records.append([part, None])
        elif isinstance(part, bytes):
            records[-1][0] += b" " + part  # items after a literal
    return [(meta, literal) for meta, literal in records]


def _flags(meta: bytes) -> frozenset[str]:
    found = _FLAGS.search(meta)
    return frozenset(found.group(1).decode().split()) if found else frozenset()


def _message_id(header: bytes | None) -> str | None:
    found = _MESSAGE_ID.search(header or b"")
    return found.group(1).decode() if found else None


def flags3(flags: frozenset[str]) -> Flags3:
    return ("\\Seen" in flags, "\\Flagged" in flags, "\\Answered" in flags)


class Remote:
    """Server-side changes through one imaplib session kept open for the whole case (pymap
    takes a quarter of a second per login); blocking calls run in a thread, one at a time."""

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        client = imaplib.IMAP4(box.server.host, box.server.port, timeout=15)
        client.login(box.username, box.password)
        _ok(client.capability())
        self.client = client
        self.can_move = "MOVE" in client.capabilities

    async def run(self, work: Callable[[imaplib.IMAP4], T]) -> T:
        return await asyncio.to_thread(work, self.client)

    def close(self) -> None:
        with suppress(imaplib.IMAP4.error, OSError):
            self.client.logout()

    @staticmethod
    def _select(c: imaplib.IMAP4, folder: str, *, readonly: bool = False) -> int:
        return int(_ok(c.select(_quote(folder), readonly=readonly))[0] or 0)

    async def snapshot(self, folders: list[str]) -> dict[str, ServerFolder]:
        def work(c: imaplib.IMAP4) -> dict[str, ServerFolder]:
            state: dict[str, ServerFolder] = {}
            for folder in folders:
                state[folder] = {}
                if self._select(c, folder, readonly=True) == 0:
                    continue
                data = _ok(
                    c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                )
                for meta, literal in _records(data):
                    uid = _UID.search(meta)
                    assert uid is not None, meta
                    state[folder][int(uid.group(1))] = (_flags(meta), _message_id(literal))
            return state

        return await self.run(work)

    async def append(self, folder: str, items: list[tuple[bytes, str, str]]) -> None:
        """Each item: (raw message, flags like "\\Seen \\Flagged" or "", quoted date)."""

        def work(c: imaplib.IMAP4) -> None:
            for raw, flags, date in items:
                _ok(c.append(_quote(folder), f"({flags})" if flags else None, date, raw))

        await self.run(work)

    async def store(self, folder: str, uids: list[int], op: str, flags: str) -> None:
        def work(c: imaplib.IMAP4) -> None:
            self._select(c, folder)
            _ok(c.uid("STORE", ",".join(map(str, uids)), op, f"({flags})"))

        await self.run(work)

    async def expunge(self, folder: str, uids: list[int]) -> None:
        def work(c: imaplib.IMAP4) -> None:
            self._select(c, folder)
            _ok(c.uid("STORE", ",".join(map(str, uids)), "+FLAGS", "(\\Deleted)"))
            _ok(c.expunge())

        await self.run(work)

    async def move(self, folder: str, uid: int, target: str, *, use_move: bool) -> None:
        def work(c: imaplib.IMAP4) -> None:
            self._select(c, folder)
            if use_move:
                _ok(c.uid("MOVE", str(uid), _quote(target)))
                return
            _ok(c.uid("COPY", str(uid), _quote(target)))
            _ok(c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)"))
            _ok(c.expunge())

        await self.run(work)

    async def recreate(
        self, folder: str, *, keep_flags: bool, extra: list[tuple[bytes, str, str]]
    ) -> int:
        """Delete the folder and create it again with the same mail (same bytes and
        INTERNALDATE, in UID order), then ``extra``; a new UIDVALIDITY. The count appended."""

        def uidvalidity(c: imaplib.IMAP4) -> int:
            data = _ok(c.status(_quote(folder), "(UIDVALIDITY)"))
            found = _UIDVALIDITY.search(data[0] or b"")
            assert found, data
            return int(found.group(1))

        def work(c: imaplib.IMAP4) -> int:
            before = uidvalidity(c)
            mail: list[tuple[int, bytes, str, str]] = []
            if self._select(c, folder, readonly=True):
                data = _ok(c.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])"))
                for meta, literal in _records(data):
                    uid, date = _UID.search(meta), _INTERNALDATE.search(meta)
                    assert uid and date and literal is not None, meta
                    kept = sorted(f for f in _flags(meta) if f in SYSTEM_FLAGS)
                    flags = " ".join(kept) if keep_flags else ""
                    mail.append((int(uid.group(1)), literal, flags, date.group(1).decode()))
            mail.sort()
            for _attempt in range(5):
                self._select(c, "INBOX", readonly=True)  # never delete the selected mailbox
                _ok(c.delete(_quote(folder)))
                _ok(c.create(_quote(folder)))
                if uidvalidity(c) != before:
                    break
            else:
                raise AssertionError(f"{folder} kept UIDVALIDITY {before} when recreated")
            items = [(raw, flags, date) for _uid, raw, flags, date in mail] + extra
            for raw, flags, date in items:
                _ok(c.append(_quote(folder), f"({flags})" if flags else None, date, raw))
            return len(items)

        return await self.run(work)

    async def create(self, folder: str) -> None:
        await self.run(lambda c: _ok(c.create(_quote(folder))))


# -- the scenario --------------------------------------------------------------------------


def _imap_date(moment: datetime) -> str:
    return imaplib.Time2Internaldate(moment.timestamp())


@dataclass
class Step:
    description: str
    expected_new: int | None = None  # what sync_completed must report as new, when known


@dataclass
class Scenario:
    path: str
    seed: int
    remote: Remote
    gql: GraphQLClient
    account_id: uuid.UUID | None = None
    rng: random.Random = field(init=False)
    selected: list[str] = field(default_factory=lambda: list(SYNCED))
    unselected: list[str] = field(default_factory=lambda: list(LATER))
    log: list[str] = field(default_factory=list)
    burst_done: bool = False
    now: datetime = field(init=False)
    _corpus: Iterator[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._corpus = self._messages(random.Random(self.seed * 7919 + 1))
        self.now = datetime.now(UTC).replace(microsecond=0)

    @staticmethod
    def _messages(rng: random.Random) -> Iterator[bytes]:
        pool: list[str] = []
        index = 0
        while True:
            yield realistic_message(rng, index, thread_pool=pool)
            index += 1

    def new_mail(self, count: int, *, flag_chance: float = 0.3) -> list[tuple[bytes, str, str]]:
        items = []
        for _ in range(count):
            flags = " ".join(f for f in SYSTEM_FLAGS if self.rng.random() < flag_chance)
            when = self.now - WINDOW * self.rng.random()
            items.append((next(self._corpus), flags, _imap_date(when)))
        return items

    async def populate(self) -> None:
        """Folders and mail before the account is connected."""
        for folder in ("Projects", *LATER):
            await self.remote.create(folder)
        sizes = {"INBOX": 12, "Projects": 6, "Sent": 4, "Clients": 5, "Partners": 2}
        for folder, size in sizes.items():
            chance = 0.9 if folder == "Sent" else 0.3
            await self.remote.append(folder, self.new_mail(size, flag_chance=chance))

    # -- one random change ----------------------------------------------------------------

    async def step(self, snapshot: dict[str, ServerFolder], forced: str | None) -> Step:
        """One change, or now and then a few before the next sync (new count unknown)."""
        if forced is not None or self.rng.random() >= 0.15:
            return await self._one_change(snapshot, forced)
        parts = []
        for _ in range(self.rng.randint(2, 4)):
            parts.append((await self._one_change(snapshot, None)).description)
            snapshot = await self.remote.snapshot(self.selected)
        return Step(" ; ".join(parts))

    async def _one_change(self, snapshot: dict[str, ServerFolder], forced: str | None) -> Step:
        occupied = [f for f in self.selected if snapshot[f]]
        resettable = [f for f in self.selected if f not in ("INBOX", "Sent")]
        choices: dict[str, float] = {"append": 5.0}
        if occupied:
            choices |= {"flag": 3.0, "unflag": 2.0, "delete": 1.5, "empty": 0.2, "move": 2.0}
        if self.unselected:
            choices["select"] = 0.5
        if resettable:
            choices["reset"] = 0.5
        kind = forced if forced in choices else None
        kind = kind or self.rng.choices(list(choices), list(choices.values()))[0]
        if kind == "append":
            return await self._append()
        if kind == "select":
            return await self._select_folder(snapshot)
        if kind == "reset":
            return await self._reset(snapshot, self.rng.choice(resettable))
        folder = self.rng.choice(occupied)
        uids = sorted(snapshot[folder])
        if kind == "move":
            uid = self.rng.choice(uids)
            target = self.rng.choice([f for f in self.selected if f != folder])
            use_move = self.remote.can_move and self.rng.random() < 0.5
            await self.remote.move(folder, uid, target, use_move=use_move)
            how = "MOVE" if use_move else "COPY+EXPUNGE"
            return Step(f"move {folder} uid {uid} -> {target} ({how})", expected_new=1)
        if kind == "empty":
            await self.remote.expunge(folder, uids)
            return Step(f"delete+expunge all {len(uids)} of {folder}", expected_new=0)
        picked = self.rng.sample(uids, min(len(uids), self.rng.choice((1, 1, 2, 3))))
        if kind == "delete":
            await self.remote.expunge(folder, picked)
            return Step(f"delete+expunge {folder} uids {picked}", expected_new=0)
        flags = [f for f in SYSTEM_FLAGS if self.rng.random() < 0.5] or [
            self.rng.choice(SYSTEM_FLAGS)
        ]
        op = "+FLAGS" if kind == "flag" else "-FLAGS"
        await self.remote.store(folder, picked, op, " ".join(flags))
        return Step(f"{op} {' '.join(flags)} on {folder} uids {picked}", expected_new=0)

    async def _append(self) -> Step:
        targets = self.selected + self.unselected
        weights = [3.0] * len(self.selected) + [0.5] * len(self.unselected)
        folder = self.rng.choices(targets, weights)[0]
        roll = self.rng.random()
        if roll < 0.04 and not self.burst_done:  # more than one fetch chunk (50)
            count, self.burst_done = self.rng.randint(51, 60), True
        elif roll < 0.25:
            count = self.rng.randint(2, 6)
        else:
            count = 1
        items = self.new_mail(count)
        await self.remote.append(folder, items)
        flagged = sum(1 for _raw, flags, _date in items if flags)
        new = count if folder in self.selected else 0
        return Step(f"append {count} to {folder} ({flagged} with flags)", expected_new=new)

    async def _select_folder(self, snapshot: dict[str, ServerFolder]) -> Step:
        folder = self.unselected.pop(0)
        labels = [*self.selected, folder]
        assert self.account_id is not None
        data = await self.gql.execute(
            UPDATE_LABELS, {"input": {"accountId": str(self.account_id), "labels": labels}}
        )
        payload = data["updateMailAccount"]
        assert payload["userErrors"] == [], payload
        self.selected.append(folder)
        return Step(f"select {folder} (labels {labels})")

    async def _reset(self, snapshot: dict[str, ServerFolder], folder: str) -> Step:
        keep_flags = self.rng.random() < 0.5
        extra = self.new_mail(1) if self.rng.random() < 0.5 else []
        await self.remote.recreate(folder, keep_flags=keep_flags, extra=extra)
        how = "flags kept" if keep_flags else "flags lost"
        plus = f", plus 1 new dated {extra[0][2]}" if extra else ""
        # Old mail is not news, with or without a Message-ID: only the extra message is.
        return Step(f"UIDVALIDITY reset of {folder} ({how}{plus})", len(extra))


# -- comparing the store with the server -----------------------------------------------------


async def stored_message_ids(runtime: Runtime, account_id: uuid.UUID) -> dict[str, dict[int, Any]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Folder.name, Message.uid, Message.message_id)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id)
        )
        found: dict[str, dict[int, Any]] = {}
        for name, uid, message_id in rows:
            found.setdefault(name, {})[uid] = message_id
    return found


async def duplicate_message_ids(runtime: Runtime, account_id: uuid.UUID) -> list[Any]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Folder.name, Message.message_id, func.count())
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id, Message.message_id.is_not(None))
            .group_by(Folder.name, Message.message_id)
            .having(func.count() > 1)
        )
        return [tuple(row) for row in rows]


async def folder_counts(runtime: Runtime, account_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Folder.name, Folder.message_count, Folder.unread_count).where(
                Folder.account_id == account_id, Folder.selected.is_(True)
            )
        )
        return {name: (total, unread) for name, total, unread in rows}


async def compare(
    runtime: Runtime,
    account_id: uuid.UUID,
    remote: Remote,
    selected: list[str],
) -> tuple[dict[str, ServerFolder], list[str]]:
    """The server's state, and every way the store differs from it."""
    snapshot = await remote.snapshot(selected)
    expected = {f: {uid: flags3(fl) for uid, (fl, _mid) in snapshot[f].items()} for f in selected}
    stored = await stored_state(runtime, account_id)
    problems = state_differences(stored, expected)
    ids = await stored_message_ids(runtime, account_id)
    for folder in selected:
        for uid, (_flags, mid) in snapshot[folder].items():
            if uid in ids.get(folder, {}) and ids[folder][uid] != mid:
                problems.append(f"{folder} uid {uid}: Message-ID {ids[folder][uid]} != {mid}")
    if duplicates := await duplicate_message_ids(runtime, account_id):
        problems.append(f"Message-IDs stored twice in a folder: {duplicates}")
    counts = await folder_counts(runtime, account_id)
    for folder in selected:
        flags = [fl for fl, _mid in snapshot[folder].values()]
        wanted = (len(flags), sum(1 for fl in flags if "\\Seen" not in fl))
        if counts.get(folder) != wanted:
            problems.append(f"{folder}: (message_count, unread_count) {counts.get(folder)}")
            problems[-1] += f" but the server has {wanted}"
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
        assert account is not None
        if account.status is not AccountStatus.ACTIVE or account.last_error is not None:
            problems.append(f"account {account.status} with lastError {account.last_error!r}")
    return snapshot, problems


def _report(path: str, seed: int, log: list[str], problems: list[str]) -> str:
    steps = "\n".join(f"  {line}" for line in log)
    found = "\n".join(f"  - {p}" for p in problems)
    return (
        f"{path} seed {seed}: the store differs from the server after step {len(log) - 1}\n"
        f"{found}\nsteps (replay: pytest tests/sync/test_differential.py -k '{path}-{seed}'):\n"
        f"{steps}"
    )


# -- the tests -------------------------------------------------------------------------------


@asynccontextmanager
async def remote_session(box: Mailbox) -> AsyncIterator[Remote]:
    remote = await asyncio.to_thread(Remote, box)
    try:
        yield remote
    finally:
        await asyncio.to_thread(remote.close)


@asynccontextmanager
async def sync_route(box: Mailbox, path: str) -> AsyncIterator[tuple[Mailbox, QuirksProxy | None]]:
    """The mailbox as the account (and the test's changes) see it: direct, or through the
    route's quirks proxy, which then sees every APPEND too."""
    quirks = PATHS[path].quirks
    if quirks is None:
        yield box, None
        return
    async with QuirksProxy(box.server.host, box.server.port, quirks) as proxy:
        yield seen_through(box, proxy), proxy


def _quirks_were_in_force(path: str, proxy: QuirksProxy | None) -> bool:
    """Whether the server's answers were really bent (a quirk the engine no longer asks
    for, UID SEARCH UID, bends nothing: there, no command may rely on it)."""
    if proxy is None:
        return True
    if path == "seq-search":
        return not any(_UID_SEARCH_UID.search(c.line) for c in proxy.commands)
    return proxy.rewritten > 0


@pytest.mark.parametrize(("path", "seed"), CASES, ids=[f"{p}-{s}" for p, s in CASES])
async def test_random_server_changes_are_mirrored_after_every_sync(
    path: str,
    seed: int,
    gql: GraphQLClient,
    new_user: Callable[..., Any],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    steps = STEPS.get(path, QUIRK_STEPS)
    async with (
        private_mailbox(PATHS[path].server, dovecot, tmp_path) as box,
        sync_route(box, path) as (seen, proxy),
        remote_session(seen) as remote,
    ):
        user: TestUser = await new_user()
        client = gql.as_user(user.token)
        scenario = Scenario(path, seed, remote, client)
        await scenario.populate()
        account_id = await connect_and_start(client, seen, labels=list(SYNCED), past_sync="ALL")
        scenario.account_id = account_id
        # Every case selects a folder in its first half and resets one in its second.
        forced = {
            scenario.rng.randrange(3, steps // 2): "select",
            scenario.rng.randrange(steps // 2, steps - 1): "reset",
        }

        result = await sync_once(runtime, account_id)
        scenario.log.append("0: first sync of INBOX, Projects, Sent")
        snapshot, problems = await compare(runtime, account_id, remote, scenario.selected)
        assert not problems, _report(path, seed, scenario.log, problems)
        assert result.counts.new == sum(len(snapshot[f]) for f in SYNCED)
        async with runtime.session_factory() as session:
            modseqs = await session.scalars(
                select(Folder.highest_modseq).where(
                    Folder.account_id == account_id, Folder.selected.is_(True)
                )
            )
            # MODSEQs are kept on the CONDSTORE and QRESYNC paths only.
            assert all((m is not None) == PATHS[path].modseq for m in modseqs)

        for number in range(1, steps + 1):
            step = await scenario.step(snapshot, forced.get(number))
            scenario.log.append(f"{number}: {step.description}")
            result = await sync_once(runtime, account_id)
            scenario.log[-1] += (
                f"  [sync: new {result.counts.new}, updated {result.counts.updated},"
                f" removed {result.counts.removed}]"
            )
            snapshot, problems = await compare(runtime, account_id, remote, scenario.selected)
            if step.expected_new is not None and result.counts.new != step.expected_new:
                problems.append(f"sync counted {result.counts.new} new, not {step.expected_new}")
            assert not problems, _report(path, seed, scenario.log, problems)
        assert _quirks_were_in_force(path, proxy)

        # What the API shows agrees with the server too, and the stdlib admin client's view
        # agrees with this test's own session.
        assert await server_state(box.admin, scenario.selected) == {
            f: {uid: flags3(fl) for uid, (fl, _mid) in snapshot[f].items()}
            for f in scenario.selected
        }
        shown = (await client.execute(ACCOUNT_FOLDERS, {"id": str(account_id)}))["mailAccount"]
        assert shown["status"] == "ACTIVE" and shown["lastError"] is None
        by_name = {f["name"]: f for f in shown["folders"] if f["selected"]}
        assert sorted(by_name) == sorted(scenario.selected)
        for folder in scenario.selected:
            flags = [fl for fl, _mid in snapshot[folder].values()]
            unread = sum(1 for fl in flags if "\\Seen" not in fl)
            assert (by_name[folder]["messageCount"], by_name[folder]["unreadCount"]) == (
                len(flags),
                unread,
            )
        assert shown["messageCount"] == sum(len(snapshot[f]) for f in scenario.selected)


# -- focused cases for what the random runs found ---------------------------------------------


def _dated(rng: random.Random, index: int, days_ago: float) -> tuple[bytes, str, str]:
    raw = realistic_message(rng, index, thread_pool=[])
    return raw, "", _imap_date(datetime.now(UTC) - timedelta(days=days_ago))


@pytest.mark.parametrize("path", list(PATHS))
async def test_uidvalidity_reset_finds_mail_older_than_what_was_stored(
    path: str,
    gql: GraphQLClient,
    new_user: Callable[..., Any],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """The folder comes back (new UIDVALIDITY) with its mail and one older message, say
    from a server migration: with pastSync ALL every message must be stored."""
    rng = random.Random(5)
    async with (
        private_mailbox(PATHS[path].server, dovecot, tmp_path) as box,
        sync_route(box, path) as (seen, _proxy),
        remote_session(seen) as remote,
    ):
        await remote.create("Projects")
        await remote.append("Projects", [_dated(rng, i, 10 + i) for i in range(3)])
        user: TestUser = await new_user()
        account_id = await connect_and_start(gql.as_user(user.token), seen, labels=["Projects"])
        await sync_once(runtime, account_id)

        older = [_dated(rng, 9, 200)]
        await remote.recreate("Projects", keep_flags=True, extra=older)
        result = await sync_once(runtime, account_id)
        _snapshot, problems = await compare(runtime, account_id, remote, ["Projects"])
        assert not problems
        assert result.counts.new == 1


@pytest.mark.parametrize("path", list(PATHS))
async def test_uidvalidity_reset_takes_the_flags_the_server_has_now(
    path: str,
    gql: GraphQLClient,
    new_user: Callable[..., Any],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """Recreated without its flags (read mail is unread again on the server): the rows
    matched by Message-ID must show the server's flags, not the old ones."""
    rng = random.Random(6)
    async with (
        private_mailbox(PATHS[path].server, dovecot, tmp_path) as box,
        sync_route(box, path) as (seen, _proxy),
        remote_session(seen) as remote,
    ):
        await remote.create("Projects")
        mail = [_dated(rng, i, 5 + i) for i in range(3)]
        await remote.append("Projects", [(raw, "\\Seen \\Flagged", date) for raw, _f, date in mail])
        user: TestUser = await new_user()
        account_id = await connect_and_start(gql.as_user(user.token), seen, labels=["Projects"])
        await sync_once(runtime, account_id)

        await remote.recreate("Projects", keep_flags=False, extra=[])
        await sync_once(runtime, account_id)
        _snapshot, problems = await compare(runtime, account_id, remote, ["Projects"])
        assert not problems


async def test_a_folder_created_after_connecting_can_be_selected(
    gql: GraphQLClient,
    new_user: Callable[..., Any],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """The user creates a folder in their mail client after connecting the account, then
    adds it to the synced folders."""
    rng = random.Random(7)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        remote = await asyncio.to_thread(Remote, box)
        try:
            user: TestUser = await new_user()
            client = gql.as_user(user.token)
            account_id = await connect_and_start(client, box, labels=["INBOX"])
            await sync_once(runtime, account_id)
            await remote.create("Deals")
            await remote.append("Deals", [_dated(rng, i, 3 + i) for i in range(2)])

            data = await client.execute(
                UPDATE_LABELS,
                {"input": {"accountId": str(account_id), "labels": ["INBOX", "Deals"]}},
            )
            assert data["updateMailAccount"]["userErrors"] == []
            await sync_once(runtime, account_id)
            _snapshot, problems = await compare(runtime, account_id, remote, ["INBOX", "Deals"])
            assert not problems
        finally:
            await asyncio.to_thread(remote.close)


async def test_a_synced_folder_deleted_on_the_server_does_not_stop_the_others(
    gql: GraphQLClient,
    new_user: Callable[..., Any],
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """The user deletes a synced folder in their mail client: its mail leaves the inbox and
    the other folders keep syncing (the account does not fail on every run)."""
    rng = random.Random(8)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box, remote_session(box) as remote:
        await remote.create("Projects")
        await remote.append("Projects", [_dated(rng, i, 3 + i) for i in range(2)])
        await remote.append("INBOX", [_dated(rng, 10 + i, 3 + i) for i in range(2)])
        user: TestUser = await new_user()
        client = gql.as_user(user.token)
        account_id = await connect_and_start(client, box, labels=["INBOX", "Projects"])
        await sync_once(runtime, account_id)

        await remote.run(lambda c: _ok(c.delete(_quote("Projects"))))
        await remote.append("INBOX", [_dated(rng, 20, 1)])
        await AccountSyncRun(runtime, account_id, EVERY_RUN).run()
        shown = (await client.execute(ACCOUNT_FOLDERS, {"id": str(account_id)}))["mailAccount"]
        stored = await stored_state(runtime, account_id)
        inbox = (await remote.snapshot(["INBOX"]))["INBOX"]
        assert stored.get("INBOX") == {uid: flags3(fl) for uid, (fl, _mid) in inbox.items()}
        assert not stored.get("Projects")
        assert shown["status"] == "ACTIVE", shown
