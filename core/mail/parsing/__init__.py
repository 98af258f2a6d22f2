"""Raw RFC 5322 messages (IMAP `BODY.PEEK[]`) to the fields the sync engine stores.

Pure and CPU-bound: no I/O, no global state. `parse_message` never raises, whatever the bytes.

Measured on this machine (2 cores shared with other jobs, Python 3.11.7, one process),
corpus(2000, seed=1) from tests/support/mail_corpus.py, 16.0 MB (8 KB per message on average);
best of 5 repeats, best of several runs (runs varied by up to 30% with the machine's load):

    email.message_from_bytes(policy=compat32), parse only      4,100 msg/s   33 MB/s
    BytesParser(policy=email.policy.default), parse only       1,040 msg/s  8.3 MB/s
    BytesParser(policy=default) + the fields below               440 msg/s  3.6 MB/s
    parse_message before the fast path (compat32 + fields)     2,400 msg/s   19 MB/s
    parse_message (fast path + the fields below)               5,100 msg/s   41 MB/s

    reproduce: .venv/bin/python -m tests.support.mail_corpus --count 2000 --seed 1 --repeat 5

The modern API is 4x slower to parse and 5.5x slower end to end (its header objects and
get_body/iter_attachments), so this module uses compat32 and decodes headers itself. The
stdlib parse was about three quarters of parse_message (email.feedparser goes a line at a
time in Python and compiles a regex per boundary): _fast_tree builds the same compat32
Message tree with str.find for well-formed messages (all of the corpus) and leaves anything
unusual to the stdlib, which made parse_message 2.1x faster (corpus(3000, 1): 2,200-2,500
msg/s before, 4,800-5,200 after). 10,000 messages take about 2 s of one core. Parsing is
CPU-bound and holds the GIL: to use both cores, run it in a process pool (ParsedMessage
pickles), not in threads.

Attachment sizes are not decoded where they can be counted: base64 parts (nearly all
attachments) count their alphabet characters * 3 // 4, exact for well-formed base64. That is
39 us instead of 73 us for the corpus' 10-40 KB attachments, and 0.05 s / 34 MB peak instead
of 0.8 s / 154 MB for a 25 MB one. Quoted-printable and uuencoded parts (rare) are decoded;
7bit/8bit/binary parts are their byte length.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import logging
from email.message import Message
from email.parser import BytesParser

from core.mail import fingerprint
from core.mail.msgid import MAX_MSG_ID_BYTES
from core.mail.parsing._defences import (
    _PARAM_FIELD,
    _defuse_parameters,
    _too_deep,
    _without_mixed_sections,
)
from core.mail.parsing._fast import _fast_tree
from core.mail.parsing._mime import _walk
from core.mail.parsing._text import (
    _addresses,
    _date,
    _header_text,
    _msg_ids,
    _snippet,
)
from core.mail.parsing._text import (
    _full_addresses as _full_addresses,  # reached by the tests
)
from core.mail.parsing._text import (
    _simple_addresses as _simple_addresses,  # reached by the tests
)
from core.mail.parsing.model import (
    _EMPTY,
    MAX_DEPTH,
    MAX_PARTS,
    MAX_REFERENCES,
    SNIPPET_LENGTH,
    Address,
    AttachmentInfo,
    ParsedMessage,
)

log = logging.getLogger(__name__)

__all__ = [
    "MAX_DEPTH",
    "MAX_MSG_ID_BYTES",
    "MAX_PARTS",
    "MAX_REFERENCES",
    "SNIPPET_LENGTH",
    "Address",
    "AttachmentInfo",
    "ParsedMessage",
    "header_message_id",
    "parse_message",
    "thread_key_candidates",
]


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one raw message. Never raises: missing or broken parts come back as None/empty.

    A message the `email` package cannot take apart (nesting deep enough to exhaust the
    recursion limit, or a structure that would take it minutes) keeps its headers only.
    """
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    try:
        return _parse(raw)
    except RecursionError:
        log.warning("message nested too deeply to parse (%d bytes); keeping its headers", len(raw))
    except Exception:
        # A bug here or in the stdlib on some odd input must not stop a mailbox from syncing.
        log.exception("could not parse a message (%d bytes); keeping its headers", len(raw))
    try:
        return _parse_headers_only(raw)
    except Exception:
        log.exception("could not parse the headers of a message (%d bytes)", len(raw))
        return _EMPTY


def thread_key_candidates(parsed: ParsedMessage) -> tuple[str, ...]:
    """The msg-ids that identify the conversation, most general first.

    References (oldest first), then In-Reply-To, then the message's own Message-ID,
    deduplicated. A message belongs to the thread of any stored message whose Message-ID is
    one of these (or that lists one of these itself).
    """
    ids = [*parsed.references]
    if parsed.in_reply_to is not None:
        ids.append(parsed.in_reply_to)
    if parsed.message_id is not None:
        ids.append(parsed.message_id)
    return tuple(dict.fromkeys(ids))


def header_message_id(header: bytes) -> str | None:
    """The Message-ID in raw header lines (e.g. a FETCH of ``HEADER.FIELDS (MESSAGE-ID)``),
    as :func:`parse_message` would store it; None when there is none or it is malformed."""
    values = fingerprint.header_values(header, "message-id")
    ids = _msg_ids([values[0].decode("utf-8", "replace")], bare_ok=True) if values else []
    return ids[0] if ids else None


# --- the message ---------------------------------------------------------------------------

_HEADERS = frozenset(
    ("message-id", "in-reply-to", "references", "subject", "from", "to", "cc", "date")
)


def _parse(raw: bytes, *, fast: bool = True) -> ParsedMessage:
    """`fast=False` always takes the stdlib parser (the tests compare the two paths)."""
    raw = _defuse_parameters(raw)
    if _too_deep(raw):
        log.warning("message too deeply nested to parse (%d bytes); keeping its headers", len(raw))
        return _parse_headers_only(raw)
    msg = _fast_tree(raw) if fast else None
    if msg is None:
        msg = _stdlib_tree(raw)
    text, markup, attachments = _walk(msg)
    return _with_headers(msg, text, markup, attachments)


def _stdlib_tree(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except TypeError:
        # email.utils.decode_params sorts RFC 2231 sections by number, and fails when one
        # parameter has both name*= and name*0= (the parser calls it for every boundary).
        raw = _PARAM_FIELD.sub(_without_mixed_sections, raw)
        return email.message_from_bytes(raw, policy=email.policy.compat32)


def _parse_headers_only(raw: bytes) -> ParsedMessage:
    msg = BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    return _with_headers(msg, None, None, ())


def _with_headers(
    msg: Message,
    text: str | None,
    markup: str | None,
    attachments: tuple[AttachmentInfo, ...],
) -> ParsedMessage:
    # One pass over the raw values: with compat32, msg[name] scans all headers for each name
    # and returns an email.header.Header instead of a str when the value has 8-bit bytes.
    values: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = name.lower()
        if key in _HEADERS:
            values.setdefault(key, []).append(str(value))

    message_ids = _msg_ids(values.get("message-id", ())[:1], bare_ok=True)
    in_reply_to = _msg_ids(values.get("in-reply-to", ())[:1], bare_ok=False)
    references = _msg_ids(values.get("references", ()), bare_ok=False)
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    senders = _addresses(values.get("from", ())[:1])
    subject = _header_text(values["subject"][0]) if "subject" in values else ""
    return ParsedMessage(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references),
        subject=subject or None,
        from_=senders[0] if senders else None,
        to=_addresses(values.get("to", ())),
        cc=_addresses(values.get("cc", ())),
        date=_date(values.get("date", ())[:1]),
        body_text=text,
        body_html=markup,
        snippet=_snippet(text, markup),
        attachments=attachments,
    )
