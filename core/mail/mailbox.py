"""Mailbox commands for the sync engine: STATUS, SELECT, UID SEARCH, UID FETCH.

Responses are parsed from aioimaplib's raw lines; callers keep each response small
(UID sets of bounded size) and get plain dataclasses back.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from core.mail import fingerprint
from core.mail.bodystructure import attachments_of
from core.mail.imap import ImapConnection
from core.mail.parsing.model import AttachmentInfo
from core.mail.utf7 import encode_mailbox_name

_STATUS_ITEMS = re.compile(rb"([A-Z]+) (\d+)")
_SELECT_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_QUOTED_SECTION = re.compile(rb'\bBODY\[HEADER\.FIELDS \([^)]*\)\] "((?:[^"\\]|\\.)*)"')
_ESCAPED = re.compile(rb"\\(.)")


def _unquote(text: bytes) -> bytes:
    return _ESCAPED.sub(rb"\1", text)


@dataclass(frozen=True)
class MailboxState:
    """What SELECT or STATUS tells about a mailbox."""

    exists: int
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None


@dataclass(frozen=True)
class FlagsItem:
    uid: int
    flags: frozenset[str]
    modseq: int | None
    internal_date: str | None = None  # when asked for (``fetch_flags(dates=True)``)


@dataclass(frozen=True)
class HeaderItem:
    """A message's flags, size, arrival and the few header lines of its fingerprint."""

    uid: int
    flags: frozenset[str]
    modseq: int | None
    internal_date: str | None
    size: int
    header: bytes


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    flags: frozenset[str]
    modseq: int | None
    internal_date: str | None
    size: int
    raw: bytes  # the whole message, or only its header block when not ``body_downloaded``
    body_downloaded: bool = True
    structure: tuple[AttachmentInfo, ...] = ()  # its attachments, from BODYSTRUCTURE, if not


class ImapCommandError(Exception):
    """The server answered NO/BAD to a command the sync needs (the text has no secret)."""


def quote_mailbox(name: str) -> str:
    encoded = encode_mailbox_name(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(uids: list[int]) -> str:
    """A compact IMAP sequence set, e.g. ``1:4,7,9:10``."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    start = previous = ordered[0] if ordered else 0
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        parts.append(f"{start}:{previous}" if previous != start else str(start))
        start = previous = uid
    if ordered:
        parts.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(parts)


def _check(response: Any, what: str) -> None:
    if response.result != "OK":
        raise ImapCommandError(f"the server refused {what}")


def _bytes_lines(response: Any) -> list[bytes]:
    return [bytes(line) for line in response.lines if isinstance(line, bytes)]


def _untagged(response: Any) -> list[bytes]:
    """The untagged data lines (aioimaplib drops their leading "STATUS"/"SEARCH" word and
    ends the list with the tagged completion text)."""
    return _bytes_lines(response)[:-1]


@dataclass(frozen=True)
class QuickResync:
    """What a QRESYNC SELECT reports since the last known MODSEQ (RFC 7162 3.2.5)."""

    state: MailboxState
    changed: list[FlagsItem]
    vanished: list[tuple[int, int]]  # UID ranges, inclusive


def parse_uid_ranges(text: bytes) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            ranges.append((min(a, b), max(a, b)))
    return ranges


def _select_state(lines: list[bytes], condstore: bool) -> MailboxState:
    codes: dict[bytes, int] = {}
    exists = 0
    for line in lines:
        codes.update((k, int(v)) for k, v in _SELECT_CODE.findall(line))
        match = _EXISTS.match(line)
        if match:
            exists = int(match.group(1))
    return MailboxState(
        exists=exists,
        uidvalidity=codes.get(b"UIDVALIDITY", 0),
        uidnext=codes.get(b"UIDNEXT"),
        highestmodseq=codes.get(b"HIGHESTMODSEQ") if condstore else None,
    )


def _flags_item(line: bytes) -> FlagsItem | None:
    uid, flags = _UID.search(line), _FLAGS.search(line)
    if uid is None or flags is None:
        return None
    modseq, date = _MODSEQ.search(line), _INTERNALDATE.search(line)
    return FlagsItem(
        int(uid.group(1)),
        frozenset(flags.group(1).decode().split()),
        int(modseq.group(1)) if modseq else None,
        date.group(1).decode() if date else None,
    )


def _fetch_records(response: Any) -> list[tuple[bytes, bytes | None]]:
    """A FETCH answer as (the item text, the literal if any) per message: the text after
    a literal is joined to the text before it."""
    records: list[tuple[bytes, bytes | None]] = []
    meta = b""
    literal: bytes | None = None
    started = False
    for line in response.lines:
        if isinstance(line, bytearray):
            literal = bytes(line)
        elif _FETCH_START.match(line):
            if started:
                records.append((meta, literal))
            meta, literal, started = line, None, True
        elif started:
            meta += b" " + line  # items the server sent after the literal
    if started:
        records.append((meta, literal))
    return records


class MailboxOps:
    """The commands the sync engine needs, on an authenticated :class:`ImapConnection`."""

    def __init__(self, connection: ImapConnection) -> None:
        self.connection = connection
        self.client = connection.client
        self.condstore = False
        self.qresync = False

    async def enable_extensions(self) -> None:
        """ENABLE QRESYNC (which implies CONDSTORE), else CONDSTORE, when offered.

        The capability decides, not the presence of HIGHESTMODSEQ: some servers send it
        without supporting CHANGEDSINCE.
        """
        caps = self.connection.capabilities
        if "ENABLE" not in caps:
            return
        if "QRESYNC" in caps and "CONDSTORE" in caps:
            response = await self.client.enable("QRESYNC")
            self.qresync = self.condstore = response.result == "OK"
        if not self.condstore and "CONDSTORE" in caps:
            response = await self.client.enable("CONDSTORE")
            self.condstore = response.result == "OK"

    async def select_since(self, name: str, uidvalidity: int, modseq: int) -> QuickResync:
        """SELECT with QRESYNC: flag changes and expunges since ``modseq`` in one round trip."""
        response = await self.client.select(
            f"{quote_mailbox(name)} (QRESYNC ({uidvalidity} {modseq}))"
        )
        _check(response, f"SELECT {name}")
        lines = _bytes_lines(response)
        changed: list[FlagsItem] = []
        vanished: list[tuple[int, int]] = []
        for line in lines:
            if line.startswith(b"VANISHED"):
                vanished.extend(parse_uid_ranges(line.rsplit(b" ", 1)[-1]))
            elif _FETCH_START.match(line):
                item = _flags_item(line)
                if item is not None:
                    changed.append(item)
        return QuickResync(_select_state(lines, self.condstore), changed, vanished)

    async def status(self, name: str) -> MailboxState:
        items = "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.condstore else "")
        response = await self.client.status(quote_mailbox(name), f"({items})")
        _check(response, f"STATUS {name}")
        values: dict[bytes, int] = {}
        for line in _untagged(response):
            answer = line[line.rfind(b"(") :]  # after the mailbox name, which may hold digits
            values.update((k, int(v)) for k, v in _STATUS_ITEMS.findall(answer))
        return MailboxState(
            exists=values.get(b"MESSAGES", 0),
            uidvalidity=values.get(b"UIDVALIDITY", 0),
            uidnext=values.get(b"UIDNEXT"),
            highestmodseq=values.get(b"HIGHESTMODSEQ") if self.condstore else None,
        )

    async def select(self, name: str) -> MailboxState:
        response = await self.client.select(quote_mailbox(name))
        _check(response, f"SELECT {name}")
        return _select_state(_bytes_lines(response), self.condstore)

    async def uid_search(self, criteria: str) -> list[int]:
        response = await self.client.uid_search(criteria, charset=None)
        _check(response, "UID SEARCH")
        uids: list[int] = []
        for line in _untagged(response):
            uids.extend(int(n) for n in line.split() if n.isdigit())
        return uids

    async def store_flags(self, uids: str, *, add: bool, flags: str) -> None:
        """UID STORE +FLAGS.SILENT / -FLAGS.SILENT, e.g. ``flags="(\\Seen)"``."""
        action = "+FLAGS.SILENT" if add else "-FLAGS.SILENT"
        # aioimaplib times UID FETCH, not UID STORE: a server that stops answering here
        # would hold the run until the job's timeout.
        async with asyncio.timeout(self.client.timeout):
            response = await self.client.uid("store", uids, action, flags)
        _check(response, "UID STORE")

    async def fetch_uids(self, uids: str) -> list[int]:
        """The UIDs in ``uids`` (e.g. ``"101:*"``) by UID FETCH, not UID SEARCH: some servers
        answer ``UID SEARCH UID n:*`` as if it named positions. ``n:*`` always includes the
        last message, even below n: callers filter."""
        response = await self.client.uid("fetch", uids, "(UID)")
        _check(response, "UID FETCH UID")
        found: list[int] = []
        for line in _bytes_lines(response):
            uid = _UID.search(line) if _FETCH_START.match(line) else None
            if uid is not None:
                found.append(int(uid.group(1)))
        return found

    async def fetch_headers(self, uids: str) -> list[HeaderItem]:
        """Flags, size, INTERNALDATE and the fingerprint's header lines: no body."""
        items = f"(UID FLAGS RFC822.SIZE INTERNALDATE {fingerprint.FETCH_ITEM}"
        items += " MODSEQ)" if self.condstore else ")"
        response = await self.client.uid("fetch", uids, items)
        _check(response, "UID FETCH HEADER")
        found: list[HeaderItem] = []
        for meta, literal in _fetch_records(response):
            item = _flags_item(meta)
            size = _SIZE.search(meta)
            if item is None or size is None:
                continue
            if literal is None:  # RFC 3501 lets a short section come as a quoted string
                quoted = _QUOTED_SECTION.search(meta)
                literal = _unquote(quoted.group(1)) if quoted else b""
            found.append(
                HeaderItem(
                    item.uid,
                    item.flags,
                    item.modseq,
                    item.internal_date,
                    int(size.group(1)),
                    literal,
                )
            )
        return found

    async def fetch_flags(
        self, uids: str, changed_since: int | None = None, *, dates: bool = False
    ) -> list[FlagsItem]:
        items = "(UID FLAGS MODSEQ" if self.condstore else "(UID FLAGS"
        items += " INTERNALDATE)" if dates else ")"
        if changed_since is not None:
            items += f" (CHANGEDSINCE {changed_since})"
        response = await self.client.uid("fetch", uids, items)
        _check(response, "UID FETCH FLAGS")
        found: list[FlagsItem] = []
        for line in _bytes_lines(response):
            item = _flags_item(line) if _FETCH_START.match(line) else None
            if item is not None:
                found.append(item)
        return found

    async def fetch_sizes(self, uids: str) -> dict[int, tuple[int, str | None]]:
        """RFC822.SIZE and INTERNALDATE by UID: read before any body is asked for (the
        size cuts chunks, the date orders a first sync newest first). Every UID answered is
        in it: one whose size is missing counts as 0, its date as None."""
        response = await self.client.uid("fetch", uids, "(UID RFC822.SIZE INTERNALDATE)")
        _check(response, "UID FETCH RFC822.SIZE")
        sizes: dict[int, tuple[int, str | None]] = {}
        for line in _bytes_lines(response):
            uid = _UID.search(line) if _FETCH_START.match(line) else None
            if uid is not None:
                size, date = _SIZE.search(line), _INTERNALDATE.search(line)
                arrived = date.group(1).decode("ascii", "replace") if date else None
                sizes[int(uid.group(1))] = (int(size.group(1)) if size else 0, arrived)
        return sizes

    async def fetch_messages(
        self, uids: str, *, headers_only: bool = False
    ) -> list[FetchedMessage]:
        """Whole messages with their flags; the order is the server's. ``headers_only``: the
        header block instead (``body_downloaded`` False), for messages too large to fetch."""
        section = "BODY.PEEK[HEADER] BODYSTRUCTURE" if headers_only else "BODY.PEEK[]"
        items = f"(UID FLAGS INTERNALDATE RFC822.SIZE {section}"
        items += " MODSEQ)" if self.condstore else ")"
        response = await self.client.uid("fetch", uids, items)
        _check(response, "UID FETCH BODY")
        messages: list[FetchedMessage] = []
        for meta, raw in _fetch_records(response):
            uid = _UID.search(meta)
            if uid is None or raw is None:
                continue
            flags = _FLAGS.search(meta)
            modseq, size, date = (
                _MODSEQ.search(meta),
                _SIZE.search(meta),
                _INTERNALDATE.search(meta),
            )
            messages.append(
                FetchedMessage(
                    uid=int(uid.group(1)),
                    flags=frozenset(flags.group(1).decode().split()) if flags else frozenset(),
                    modseq=int(modseq.group(1)) if modseq else None,
                    internal_date=date.group(1).decode() if date else None,
                    size=int(size.group(1)) if size else len(raw),
                    raw=raw,
                    body_downloaded=not headers_only,
                    structure=attachments_of(meta) if headers_only else (),
                )
            )
        return messages
