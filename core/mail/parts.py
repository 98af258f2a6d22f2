"""One MIME part of one message, fetched from the IMAP server a slice at a time.

``UID FETCH uid (BODY.PEEK[part]<offset.length>)`` in slices of CHUNK_BYTES: aioimaplib
holds each response whole, so asking for the part at once would hold a 25 MB attachment
(34 MB of base64) in memory; a slice at a time holds one slice. PEEK: reading an
attachment does not mark the message read.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from core.mail.imap import ImapConnection
from core.mail.mailbox import MailboxOps, _fetch_records, _unquote
from core.mail.transfer import decoder_for

CHUNK_BYTES = 512 * 1024
_SECTION = re.compile(r"^[1-9][0-9]{0,4}(\.[1-9][0-9]{0,4}){0,63}$")
_UID = re.compile(rb"\bUID (\d+)")
_QUOTED = re.compile(rb'\bBODY\[[^\]]*\](?:<\d+>)? "((?:[^"\\]|\\.)*)"')


class PartGone(Exception):
    """The message is no longer where it was stored: the folder is gone, its UIDVALIDITY
    changed (the UIDs now name other messages) or the message was expunged."""


async def stream_part(
    connection: ImapConnection,
    folder: str,
    uidvalidity: int | None,
    uid: int,
    part: str,
    encoding: str,
    size: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> AsyncIterator[bytes]:
    """The decoded body of MIME part ``part`` of message ``uid``. Raises PartGone before
    the first chunk when the message is not there any more; the first chunk is yielded
    (empty for an empty part) as soon as the server has answered once.

    ``size``: the decoded size the parser counted, when exact. Line breaks beyond it are
    dropped: some servers (pymap 0.36) include the CRLF before the next boundary, which
    RFC 2046 5.1.1 says belongs to the boundary."""
    if not _SECTION.match(part):
        raise PartGone(f"no part {part!r}")
    ops = MailboxOps(connection)
    try:
        state = await ops.select(folder)
    except Exception as exc:  # a folder renamed or deleted on the server
        raise PartGone("the folder is gone") from exc
    if uidvalidity is not None and state.uidvalidity != uidvalidity:
        raise PartGone("the folder's UIDVALIDITY changed")
    decoder = decoder_for(encoding)
    trim = _TrailingBreaks(size)
    offset = 0
    while True:
        data = await _slice(connection, uid, part, offset, chunk_bytes)
        if data is None:
            if offset == 0:
                raise PartGone("the message was expunged")
            data = b""
        offset += len(data)
        decoded = trim.feed(decoder.feed(data))
        last = len(data) < chunk_bytes
        if last:
            decoded += trim.feed(decoder.finish()) + trim.finish()
        if decoded or offset == len(data):  # the first answer is always passed on
            yield decoded
        if last:
            return


class _TrailingBreaks:
    """Holds back what comes after ``size`` bytes; drops it if it is only CR and LF."""

    _MAX_HELD = 64 * 1024  # the size was wrong: pass everything on

    def __init__(self, size: int | None) -> None:
        self._left = size
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if self._left is None:
            return data
        passed, extra = data[: self._left], data[self._left :]
        self._left -= len(passed)
        self._held += extra
        if len(self._held) > self._MAX_HELD:
            passed, self._held, self._left = passed + self._held, b"", None
        return passed

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return b"" if not held.strip(b"\r\n") else held


async def _slice(
    connection: ImapConnection, uid: int, part: str, offset: int, length: int
) -> bytes | None:
    """The bytes of one slice; None when the server has no such message (any more)."""
    response = await connection.client.uid(
        "fetch", str(uid), f"(UID BODY.PEEK[{part}]<{offset}.{length}>)"
    )
    if response.result != "OK":
        return None
    for meta, literal in _fetch_records(response):
        found = _UID.search(meta)
        if found is None or int(found.group(1)) != uid or b"BODY[" not in meta:
            continue  # an unsolicited FETCH (another client changed flags)
        if literal is not None:
            return literal
        quoted = _QUOTED.search(meta)
        return _unquote(quoted.group(1)) if quoted else b""  # NIL or "": past the end
    return None
