"""A message's content fingerprint: how a stored row is found again after the server
renumbered its folder (a new UIDVALIDITY, a rename that renumbers), even when the message
has no Message-ID or shares one with other copies.

It is computed from the raw header lines Message-ID, Date, From, To and Subject (unfolded,
whitespace collapsed, names case-insensitive) and the RFC822.SIZE, so the same value comes
out of a whole message (``of_message``) and out of the few header lines a cheap
``BODY.PEEK[HEADER.FIELDS (...)]`` returns (``of_header``): rows are re-matched without
downloading a body again. Identical copies share a fingerprint, and are interchangeable.
"""

from __future__ import annotations

import hashlib
import re

FIELDS = ("message-id", "date", "from", "to", "subject")
# What a FETCH asks for to compute it without the body.
FETCH_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]"
MAX_HEADER = 256 * 1024  # a header section beyond this is cut: the fingerprint stays cheap
_END_OF_HEADER = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_SPACE = re.compile(rb"[ \t]+")


def _fields(header: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in _FOLD.sub(b" ", header[:MAX_HEADER]).splitlines():
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().lower()
        if key.decode("ascii", "replace") in FIELDS:
            found.setdefault(key, []).append(_SPACE.sub(b" ", value).strip())
    return found


def header_values(header: bytes, name: str) -> list[bytes]:
    """The unfolded values of header ``name`` (one of FIELDS), in order."""
    return _fields(header).get(name.encode(), [])


def of_header(header: bytes, size: int) -> str:
    """The fingerprint from header lines (all of them, or just the FIELDS)."""
    fields = _fields(header)
    digest = hashlib.sha256()
    for name in FIELDS:
        for value in fields.get(name.encode(), ()):
            digest.update(name.encode() + b":" + value + b"\n")
    digest.update(b"size:%d" % size)
    return digest.hexdigest()[:32]


def of_message(raw: bytes, size: int) -> str:
    """The fingerprint of a whole message (its header section is read, not parsed)."""
    end = _END_OF_HEADER.search(raw, 0, MAX_HEADER)
    return of_header(raw[: end.start()] if end else raw, size)
