"""Content fingerprints: the same value from a whole message and from the few header lines
a header-only FETCH returns, whether the server sends them as a literal or quoted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.mail import fingerprint
from core.mail.mailbox import MailboxOps
from core.mail.parsing import header_message_id

RAW = (
    b"Received: from mx.example.com by mail.example.org\r\n"
    b"From: Ann Example\r\n <ann@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: =?utf-8?q?Angebot_f=C3=BCr?=\r\n\t2027\r\n"
    b"Date: Fri, 20 Nov 2026 09:30:00 +0000\r\n"
    b"Message-ID: <offer-7@example.com>\r\n"
    b"X-Other: not part of it\r\n"
    b"\r\n"
    b"Body.\r\n"
)
# What BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] returns for it.
FIELDS = (
    b"From: Ann Example\r\n <ann@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: =?utf-8?q?Angebot_f=C3=BCr?=\r\n\t2027\r\n"
    b"Date: Fri, 20 Nov 2026 09:30:00 +0000\r\n"
    b"Message-ID: <offer-7@example.com>\r\n"
    b"\r\n"
)


def test_a_whole_message_and_its_header_fields_give_one_fingerprint() -> None:
    size = len(RAW)
    assert fingerprint.of_message(RAW, size) == fingerprint.of_header(FIELDS, size)
    assert fingerprint.of_message(RAW, size) != fingerprint.of_message(RAW, size + 1)
    other = RAW.replace(b"2027", b"2028")
    assert fingerprint.of_message(other, size) != fingerprint.of_message(RAW, size)
    assert header_message_id(FIELDS) == "offer-7@example.com"


@dataclass
class _Response:
    result: str
    lines: list[Any]


class _Client:
    """Answers one UID FETCH with prepared lines, as aioimaplib hands them over."""

    def __init__(self, lines: list[Any]) -> None:
        self.lines = lines

    async def uid(self, *args: str) -> _Response:
        return _Response("OK", self.lines)


class _Connection:
    def __init__(self, lines: list[Any]) -> None:
        self.client = _Client(lines)


async def test_header_fields_are_read_as_a_literal_or_as_a_quoted_string() -> None:
    lines = [
        b'1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 310 INTERNALDATE "20-Nov-2026 09:30:00'
        b' +0000" BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] {43}',
        bytearray(b"Message-ID: <a@example.com>\r\nSubject: x\r\n\r\n"),
        b")",
        b'2 FETCH (UID 9 FLAGS () RFC822.SIZE 120 INTERNALDATE "20-Nov-2026 09:31:00 +0000"'
        b' BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] "Subject: \\"q\\""',
        b")",
        b"Fetch completed.",
    ]
    ops = MailboxOps(_Connection(lines))  # type: ignore[arg-type]  # only .client is used
    first, second = await ops.fetch_headers("7,9")
    assert (first.uid, first.size, first.flags) == (7, 310, frozenset({"\\Seen"}))
    assert first.header == b"Message-ID: <a@example.com>\r\nSubject: x\r\n\r\n"
    assert (second.uid, second.size, second.header) == (9, 120, b'Subject: "q"')
    assert fingerprint.of_header(second.header, 120) == fingerprint.of_header(
        b'Subject:   "q"\r\n\r\n', 120
    )
