"""A loopback IMAP server (asyncio) that turns hostile on demand, one mode per failure seen in
the field. It holds one mailbox, INBOX, with one message (UID 1) and answers honestly until
``mode`` is set; then, from the next connection on:

* ``huge_literal``: the body FETCH announces a ``{2000000000}`` literal and streams filler
  while the client reads (RFC822.SIZE still says the message is small: the server lies).
* ``endless_line``: after login, an untagged line that never ends (no CRLF), streamed.
* ``folder_flood``: LIST answers ``folder_count`` folders (100,000).
* ``huge_message``: the message is ``message_bytes`` (200 MB) of mostly base64 attachment,
  its RFC822.SIZE true.
* ``mute_after_greeting``: greets, then never answers a command.
* ``drip``: every response goes out one byte at a time, ``drip_delay`` apart.
* ``deep_nesting``: the message is MIME nested ``depth`` (10,000) multiparts deep, and its
  BODYSTRUCTURE as deep.
* ``garbage_after_login``: after LOGIN's OK, random bytes instead of IMAP.

``connections`` counts accepted connections, ``commands`` the command names received;
``sent`` is the bytes written to all clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal[
    "honest",
    "huge_literal",
    "endless_line",
    "folder_flood",
    "huge_message",
    "mute_after_greeting",
    "drip",
    "deep_nesting",
    "garbage_after_login",
]
_COMMAND = re.compile(rb"^(?P<tag>[^ \r\n]+) (?P<name>UID [A-Za-z]+|[A-Za-z]+)(?P<rest>.*)$", re.I)
_CHUNK = 256 * 1024
DATE = "02-Dec-2026 01:00:00 +0000"


def small_message(subject: str = "hello from a hostile server") -> bytes:
    return (
        "From: Hostile <hostile@example.test>\r\nTo: you@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <hostile-1@example.test>\r\n"
        "Date: Wed, 02 Dec 2026 01:00:00 +0000\r\n\r\nJust a line.\r\n"
    ).encode()


def deeply_nested_message(depth: int) -> bytes:
    head = (
        b"From: Hostile <hostile@example.test>\r\nSubject: nested\r\n"
        b"Message-ID: <hostile-1@example.test>\r\nMIME-Version: 1.0\r\n"
    )
    parts = [head]
    for level in range(depth):
        parts.append(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
        )
    parts.append(b"Content-Type: text/plain\r\n\r\ndeep inside\r\n")
    for level in reversed(range(depth)):
        parts.append(b"--b%d--\r\n" % level)
    return b"".join(parts)


@dataclass
class HugeMessage:
    """A message of exactly ``size`` bytes: headers, a short text part, then a base64
    attachment of filler lines; streamed in pieces, never held whole."""

    size: int
    _line: bytes = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"

    def head(self) -> bytes:
        return (
            b"From: Hostile <hostile@example.test>\r\nTo: you@example.test\r\n"
            b"Subject: a 200 MB message\r\nMessage-ID: <hostile-1@example.test>\r\n"
            b"Date: Wed, 02 Dec 2026 01:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
            b"--XX\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            b'--XX\r\nContent-Type: application/octet-stream; name="big.bin"\r\n'
            b'Content-Disposition: attachment; filename="big.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )

    def tail(self) -> bytes:
        return b"--XX--\r\n"

    def pieces(self) -> list[tuple[bytes, int]]:
        """(bytes, times) to write in order; their total is ``size``."""
        head, tail = self.head(), self.tail()
        middle = self.size - len(head) - len(tail)
        block = self._line * (_CHUNK // len(self._line))
        blocks, rest = divmod(middle, len(block))
        lines, pad = divmod(rest, len(self._line))
        padding = b"A" * (pad - 2) + b"\r\n" if pad >= 2 else b"\n" * pad
        return [(head, 1), (block, blocks), (self._line * lines + padding, 1), (tail, 1)]

    def bodystructure(self) -> bytes:
        return (
            b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL)'
            b'("application" "octet-stream" ("name" "big.bin") NIL NIL "base64" '
            + str(self.size - 600).encode()
            + b' NIL ("attachment" ("filename" "big.bin")) NIL NIL) "mixed" ("boundary" "XX")'
            b" NIL NIL NIL)"
        )


@dataclass
class HostileImapServer:
    mode: Mode = "honest"
    host: str = "127.0.0.1"
    port: int = 0
    username: str = "victim@example.test"
    password: str = "pw-hostile"
    folder_count: int = 100_000
    literal_size: int = 2_000_000_000
    message_bytes: int = 200 * 1024 * 1024
    depth: int = 10_000
    drip_delay: float = 0.001
    connections: int = 0
    commands: list[str] = field(default_factory=list)
    sent: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> HostileImapServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def imap_input(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "security": "NONE",
            "username": self.username,
            "password": self.password,
        }

    # -- one connection ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        mode = self.mode  # a connection keeps the mode it started with
        try:
            await self._write(writer, b"* OK [CAPABILITY IMAP4rev1] hostile IMAP ready\r\n", mode)
            while line := await reader.readline():
                match = _COMMAND.match(line.rstrip(b"\r\n"))
                if match is None:
                    continue
                tag, name = match.group("tag"), match.group("name").upper()
                rest = match.group("rest")
                self.commands.append(" ".join(name.decode().split()))
                if mode == "mute_after_greeting":
                    continue  # read everything, answer nothing
                if not await self._answer(writer, mode, tag, name, rest):
                    return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes, mode: Mode) -> None:
        if mode == "drip":
            for index in range(len(data)):
                writer.write(data[index : index + 1])
                await writer.drain()
                await asyncio.sleep(self.drip_delay)
        else:
            writer.write(data)
            await writer.drain()
        self.sent += len(data)

    async def _answer(
        self, w: asyncio.StreamWriter, mode: Mode, tag: bytes, name: bytes, rest: bytes
    ) -> bool:
        """Answer one command; False to end the connection."""
        ok = tag + b" OK done\r\n"
        if name == b"CAPABILITY":
            await self._write(w, b"* CAPABILITY IMAP4rev1\r\n" + ok, mode)
        elif name == b"LOGIN":
            await self._write(w, tag + b" OK [CAPABILITY IMAP4rev1] logged in\r\n", mode)
            if mode == "garbage_after_login":
                rng = random.Random(19)
                await self._write(w, bytes(rng.randrange(256) for _ in range(64 * 1024)), mode)
                return False
            if mode == "endless_line":
                await self._write(w, b"* OK ", mode)
                filler = b"x" * _CHUNK
                while True:  # until the client hangs up
                    await self._write(w, filler, mode)
        elif name == b"LIST":
            await self._write(w, self._list(mode) + ok, mode)
        elif name in (b"SELECT", b"EXAMINE"):
            await self._write(
                w,
                b"* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 7] v\r\n"
                b"* OK [UIDNEXT 2] n\r\n" + tag + b" OK [READ-WRITE] selected\r\n",
                mode,
            )
        elif name == b"STATUS":
            await self._write(
                w, b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n" + ok, mode
            )
        elif name == b"UID SEARCH":
            await self._write(w, b"* SEARCH 1\r\n" + ok, mode)
        elif name == b"UID FETCH":
            await self._fetch(w, mode, rest.upper())
            await self._write(w, ok, mode)
        elif name == b"LOGOUT":
            await self._write(w, b"* BYE bye\r\n" + ok, mode)
            return False
        else:
            await self._write(w, ok, mode)
        return True

    def _list(self, mode: Mode) -> bytes:
        lines = [b'* LIST () "/" INBOX\r\n']
        if mode == "folder_flood":
            lines.extend(b'* LIST () "/" "Folder %06d"\r\n' % i for i in range(self.folder_count))
        return b"".join(lines)

    def _message(self, mode: Mode) -> bytes:
        if mode == "deep_nesting":
            return deeply_nested_message(self.depth)
        return small_message()

    def _size(self, mode: Mode) -> int:
        if mode == "huge_message":
            return self.message_bytes
        return len(self._message(mode))

    async def _fetch(self, w: asyncio.StreamWriter, mode: Mode, items: bytes) -> None:
        """UID FETCH of UID 1: the items asked for, literals last."""
        meta = b'UID 1 FLAGS () INTERNALDATE "' + DATE.encode() + b'"'
        if b"RFC822.SIZE" in items:
            shown = 1000 if mode == "huge_literal" else self._size(mode)
            meta += b" RFC822.SIZE %d" % shown
        if b"BODYSTRUCTURE" in items:
            meta += b" BODYSTRUCTURE " + self._bodystructure(mode)
        if b"BODY.PEEK[]" in items or b"BODY[]" in items or b"RFC822 " in items:
            await self._write_body(w, mode, meta)
            return
        if b"BODY.PEEK[HEADER" in items:
            header = self._header(mode)
            section = b"BODY[HEADER]"
            if b"HEADER.FIELDS" in items:
                section = b"BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"
            await self._write(
                w, b"* 1 FETCH (" + meta + b" " + section + b" {%d}\r\n" % len(header), mode
            )
            await self._write(w, header + b")\r\n", mode)
            return
        await self._write(w, b"* 1 FETCH (" + meta + b")\r\n", mode)

    def _header(self, mode: Mode) -> bytes:
        if mode == "huge_message":
            return HugeMessage(self.message_bytes).head().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        return self._message(mode).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"

    def _bodystructure(self, mode: Mode) -> bytes:
        if mode == "huge_message":
            return HugeMessage(self.message_bytes).bodystructure()
        if mode == "deep_nesting":
            leaf = b'("text" "plain" NIL NIL NIL "7bit" 13 1 NIL NIL NIL NIL)'
            return b"(" * self.depth + leaf + b' "mixed")' * self.depth
        return b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 1 NIL NIL NIL NIL)'

    async def _write_body(self, w: asyncio.StreamWriter, mode: Mode, meta: bytes) -> None:
        if mode == "huge_literal":
            await self._write(
                w, b"* 1 FETCH (" + meta + b" BODY[] {%d}\r\n" % self.literal_size, mode
            )
            filler = b"y" * _CHUNK
            while True:  # never the whole literal: until the client hangs up
                await self._write(w, filler, mode)
        if mode == "huge_message":
            big = HugeMessage(self.message_bytes)
            await self._write(w, b"* 1 FETCH (" + meta + b" BODY[] {%d}\r\n" % big.size, mode)
            for piece, times in big.pieces():
                for _ in range(times):
                    await self._write(w, piece, mode)
            await self._write(w, b")\r\n", mode)
            return
        raw = self._message(mode)
        await self._write(w, b"* 1 FETCH (" + meta + b" BODY[] {%d}\r\n" % len(raw), mode)
        await self._write(w, raw + b")\r\n", mode)
