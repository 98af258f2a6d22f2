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

import binascii
import codecs
import email
import email.errors
import email.policy
import html
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

SNIPPET_LENGTH = 200
MAX_DEPTH = 64
"""MIME parts nested deeper than this are ignored (real mail rarely nests beyond ~6)."""
MAX_PARTS = 1000
"""At most this many MIME parts are looked at; later ones are ignored."""
MAX_REFERENCES = 100
"""References beyond this are trimmed, keeping the first (the thread root) and the latest."""
MAX_MSG_ID_BYTES = 998
"""Longer msg-ids are dropped: RFC 5322's line limit, and it keeps them indexable in PostgreSQL."""


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox. `address` is as written (not lower-cased, not validated); never empty."""

    name: str | None
    address: str


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A MIME leaf part that is not the message body, or an attached message (message/*).

    `filename` is untrusted (it may contain path separators): sanitise it before using it as a
    path or a Content-Disposition. `size` is the decoded size in bytes; for message/* parts it
    is an estimate of the embedded message's size (within a few percent).
    """

    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """The stored fields of one message.

    Every string is safe for a PostgreSQL text or JSONB column: no NUL, no lone surrogate
    (both are replaced by U+FFFD). Bodies have their line endings normalised to "\\n" and are
    not sanitised: body_html is sender-controlled markup.
    """

    message_id: str | None
    """Without angle brackets; None if missing or empty."""
    in_reply_to: str | None
    """The first msg-id of In-Reply-To, without angle brackets."""
    references: tuple[str, ...]
    """msg-ids of References (several headers are joined), oldest first, deduplicated."""
    subject: str | None
    """RFC 2047 decoded, unfolded, stripped; None if missing or empty."""
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    date: datetime | None
    """Timezone-aware (UTC when the header has none, or -0000); None if missing or unparseable."""
    body_text: str | None
    """The first text/plain part that is not an attachment; None if there is none, or empty."""
    body_html: str | None
    """The first text/html part that is not an attachment; None if there is none, or empty."""
    snippet: str
    """Up to SNIPPET_LENGTH characters of the text (else of the HTML), whitespace collapsed."""
    attachments: tuple[AttachmentInfo, ...]

    @property
    def has_attachments(self) -> bool:
        return bool(self.attachments)


_EMPTY = ParsedMessage(
    message_id=None,
    in_reply_to=None,
    references=(),
    subject=None,
    from_=None,
    to=(),
    cc=(),
    date=None,
    body_text=None,
    body_html=None,
    snippet="",
    attachments=(),
)


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


# --- fast path: the stdlib parser's tree for well-formed messages -----------------------

# email.feedparser goes through the message a line at a time in Python, and compiles a regex
# for every multipart boundary: it was most of parse_message. _fast_tree builds the
# same compat32 Message tree (same headers, payloads, preambles and epilogues) with str.find
# for well-formed messages, and gives up (None: the stdlib parses it) on anything where the
# stdlib does something special: other line breaks than LF and CRLF (str.splitlines breaks
# at CR, VT, FF, FS, GS, RS too), header lines that are not "name: value" or a continuation,
# a header block without a blank line after it, message/* parts and multipart/digest (parsed
# as nested messages), multiparts without a boundary, an opening or closing delimiter, or
# with consecutive delimiters, and nesting or part counts beyond what _walk looks at.
_ODD_LINE_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")  # and a CR without LF
_HEADER_FIELD = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*\n(?:[ \t][^\n]*\n)*)")
_DELIMITER_TAIL = re.compile(r"(--)?[ \t]*(\r\n|\n)?")
_COMPAT32 = email.policy.compat32


def _fast_tree(raw: bytes) -> Message | None:
    """The Message tree email.message_from_bytes(compat32) gives; None if unsure."""
    # memchr and count: a regex for these takes as long as the rest of the fast path.
    if raw.count(b"\r") != raw.count(b"\r\n") or any(c in raw for c in _ODD_LINE_BREAKS):
        return None
    try:
        return _build_tree(raw.decode("ascii", "surrogateescape"))
    except Exception:  # e.g. get_boundary on odd RFC 2231 parameters: the stdlib decides
        log.debug("fast path failed; using the stdlib parser", exc_info=True)
        return None


def _build_tree(text: str) -> Message | None:
    root = Message(policy=_COMPAT32)
    # (message, its source, its nesting depth, whether its parent is a multipart)
    pending: list[tuple[Message, str, int, bool]] = [(root, text, 0, False)]
    parts = 0
    while pending:
        msg, source, depth, nested = pending.pop()
        parts += 1
        if parts > MAX_PARTS or depth > MAX_DEPTH:
            return None
        body = _fast_headers(msg, source)
        if body is None:
            return None
        maintype = msg.get_content_maintype()
        if maintype == "message":
            return None
        if maintype != "multipart":
            if nested and body:  # RFC 2046: the line break before a delimiter is its own
                body = body[:-2] if body.endswith("\r\n") else body[:-1]
            msg.set_payload(body)
            continue
        if msg.get_content_subtype() == "digest":
            return None
        boundary = msg.get_boundary()
        if not boundary:
            return None
        split = _split_multipart(body, "--" + boundary)
        if split is None:
            return None
        preamble, segments, epilogue = split
        msg.preamble = preamble
        if not nested:
            msg.epilogue = epilogue
        elif epilogue:  # ends with a line break, the delimiter's that follows
            msg.epilogue = epilogue[:-2] if epilogue.endswith("\r\n") else epilogue[:-1]
        else:
            msg.epilogue = None
        children = [Message(policy=_COMPAT32) for _ in segments]
        msg.set_payload(children)  # type: ignore[arg-type]  # compat32 keeps a list as is
        pending.extend(
            (child, segment, depth + 1, True)
            for child, segment in reversed(list(zip(children, segments, strict=True)))
        )
    return root


def _fast_headers(msg: Message, source: str) -> str | None:
    """Set msg's headers from the start of source, as the stdlib does; the rest, or None."""
    if source.startswith("\n"):
        return source[1:]
    if source.startswith("\r\n"):
        return source[2:]
    lf = source.find("\n\n")
    crlf = source.find("\n\r\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        block, body = source[: crlf + 1], source[crlf + 3 :]
    elif lf != -1:
        block, body = source[: lf + 1], source[lf + 2 :]
    else:
        return None
    # One field per match, as compat32's header_source_parse splits it: the name, and the
    # value without the blanks after the colon or the last line break. Anything between
    # matches is a line the stdlib would not take as a header.
    position = 0
    for field in _HEADER_FIELD.finditer(block):
        if field.start() != position:
            return None
        position = field.end()
        msg.set_raw(field.group(1), field.group(2).rstrip("\r\n"))
    if position != len(block):
        return None
    return body


def _split_multipart(body: str, separator: str) -> tuple[str | None, list[str], str] | None:
    """(preamble, part sources, epilogue) of a multipart body, as the stdlib splits it."""
    delimiters: list[tuple[int, int]] = []  # (start, end) of the delimiter lines, in order
    marker = "\n" + separator
    start = 0 if body.startswith(separator) else body.find(marker) + 1 or -1
    closed = False
    while start != -1:
        newline = body.find("\n", start)
        end = newline + 1 if newline != -1 else len(body)
        tail = _DELIMITER_TAIL.fullmatch(body, start + len(separator), end)
        if tail is not None:  # else a line that only starts like a delimiter: content
            if delimiters and delimiters[-1][1] == start:
                return None  # consecutive delimiters: the stdlib skips them its own way
            delimiters.append((start, end))
            if tail.group(1):
                closed = True
                break
            if len(delimiters) > MAX_PARTS:
                return None
        if newline == -1:
            break
        start = body.find(marker, newline) + 1 or -1
    if not closed or len(delimiters) < 2:
        return None
    first = delimiters[0][0]
    preamble: str | None = None
    if first:
        preamble = body[:first]
        preamble = preamble[:-2] if preamble.endswith("\r\n") else preamble[:-1]
    segments = [body[delimiters[i][1] : delimiters[i + 1][0]] for i in range(len(delimiters) - 1)]
    return preamble, segments, body[delimiters[-1][1] :]


# --- defences against inputs that make the stdlib slow -------------------------------------

# email.message._parseparam (Content-Type/-Disposition parameters; the parser itself calls it
# for every multipart boundary) is quadratic in the number of ';' in a field (CPython
# gh-136063): 200 KB of ';' inside quotes takes 45 s. Real fields have a handful of
# parameters; a field with more than _MAX_PARAMETERS is cut before the one too many. The
# parser takes a lone CR as a line break too, hence [\r\n] rather than ^.
_PARAM_FIELD = re.compile(
    rb"(?i)(?:^|[\r\n])content-(?:type|disposition)[ \t]*:[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*"
)
_MAX_PARAMETERS = 64
_PARAM_WORK_LIMIT = 10_000_000  # ';' count * message length: below it nothing can be slow

# The stdlib parser checks every line against every enclosing boundary, so it costs
# lines * nesting depth: 900 nested multiparts around 10,000 lines take 1.3 s. Every
# boundary parameter has "boundary" in its name, so their count bounds the depth.
_MAX_BOUNDARIES = 100
_NESTING_WORK_LIMIT = 5_000_000


def _defuse_parameters(raw: bytes) -> bytes:
    if raw.count(b";") * len(raw) < _PARAM_WORK_LIMIT:
        return raw
    pieces: list[bytes] = []
    done = 0
    for match in _PARAM_FIELD.finditer(raw):
        start, end = match.span()
        cut = start
        for _ in range(_MAX_PARAMETERS + 1):
            cut = raw.find(b";", cut + 1, end)
            if cut == -1:
                break
        else:
            pieces.append(raw[done:cut])
            done = end
    if not pieces:
        return raw
    pieces.append(raw[done:])
    return b"".join(pieces)


# An RFC 2231 parameter: name*=..., name*0=..., name*1*=...; the value quoted or a token.
_RFC2231_PARAMETER = re.compile(
    rb';\s*([^\s=;*"]+)\*([0-9]*)\*?\s*=\s*(?:"(?:[^"\\]|\\.)*(?:"|$)|[^;]*)'
)


def _without_mixed_sections(field: re.Match[bytes]) -> bytes:
    """The field without the numbered sections of a parameter that also has name*=.

    name*= is what _parameter prefers too, so the file name does not change.
    """
    text = field.group()
    kinds: dict[bytes, set[bool]] = {}
    for match in _RFC2231_PARAMETER.finditer(text):
        kinds.setdefault(match.group(1).lower(), set()).add(bool(match.group(2)))
    mixed = {name for name, numbered in kinds.items() if len(numbered) == 2}
    if not mixed:
        return text
    return _RFC2231_PARAMETER.sub(
        lambda m: b"" if m.group(2) and m.group(1).lower() in mixed else m.group(), text
    )


def _too_deep(raw: bytes) -> bool:
    boundaries = raw.lower().count(b"boundary")
    if boundaries < _MAX_BOUNDARIES:  # real mail has a few
        return False
    lines = max(raw.count(b"\n"), raw.count(b"\r"))
    return boundaries * lines > _NESTING_WORK_LIMIT


# --- MIME structure ------------------------------------------------------------------------


def _walk(msg: Message) -> tuple[str | None, str | None, tuple[AttachmentInfo, ...]]:
    """The first text/plain and text/html body parts, and the attachments, in document order.

    Iterative (Message.walk recurses) and bounded by MAX_DEPTH and MAX_PARTS. Parts of an
    attached message (message/*) are not looked into: it is one attachment.
    """
    text: str | None = None
    markup: str | None = None
    attachments: list[AttachmentInfo] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    visited = 0
    while stack and visited < MAX_PARTS:
        part, depth = stack.pop()
        visited += 1
        content_type = _db_safe(part.get_content_type())
        maintype = content_type.partition("/")[0]
        children = part.get_payload() if part.is_multipart() else None
        if maintype == "multipart" and isinstance(children, list):
            if depth < MAX_DEPTH:
                stack.extend(
                    (child, depth + 1) for child in reversed(children) if isinstance(child, Message)
                )
            continue
        headers = _mime_headers(part)
        filename = _filename(headers)
        if maintype == "message":
            attachments.append(AttachmentInfo(filename, content_type, _message_size(part)))
            continue
        if maintype == "multipart":  # no usable boundary: the parser kept the body as text
            content_type = "text/plain"
        if (
            content_type in ("text/plain", "text/html")
            and filename is None
            and part.get_content_disposition() != "attachment"
        ):
            # Later body parts (a mailing list footer, say) are neither body nor attachment.
            if content_type == "text/plain" and text is None:
                text = _body(part, headers)
            elif content_type == "text/html" and markup is None:
                markup = _body(part, headers)
            continue
        attachments.append(AttachmentInfo(filename, content_type, _leaf_size(part)))
    return text or None, markup or None, tuple(attachments)


def _mime_headers(part: Message) -> dict[str, str]:
    """The part's first Content-Type and Content-Disposition, as written (8-bit included).

    Not part.get(): for a value with 8-bit bytes it returns a Header whose text has lost them.
    """
    found: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower()
        if key in ("content-type", "content-disposition") and key not in found:
            found[key] = str(value)
    return found


def _filename(headers: dict[str, str]) -> str | None:
    """Content-Disposition's filename, else Content-Type's name (what MUAs show)."""
    for header, parameter in (("content-disposition", "filename"), ("content-type", "name")):
        value = headers.get(header)
        if value:
            name = _parameter(value, parameter)
            if name:
                return name
    return None


# One ";name=value" of a Content-Type/-Disposition: the value a quoted string (which may hold
# ";", and may be left unclosed) or a token. finditer over these is linear, unlike
# email.message._parseparam.
_PARAMETER = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*(?:"|$)|[^;]*)')


def _parameter(value: str, wanted: str) -> str | None:
    """One parameter, decoded and stripped; None if absent or empty.

    RFC 2231 (name*=utf-8''%C3%BC, and numbered continuations name*0*=, name*1=) wins over
    the plain form; plain values may be raw 8-bit or hold RFC 2047 encoded-words (Outlook and
    Gmail write file names that way, though RFC 2047 forbids it).
    """
    if wanted not in value.lower():
        return None
    plain: str | None = None
    sections: dict[int, tuple[bool, str]] = {}
    for match in _PARAMETER.finditer(_unfold(value)):
        key, text = match.group(1).lower(), match.group(2)
        if text.startswith('"'):
            inner = text[1:-1] if text.endswith('"') and len(text) > 1 else text[1:]
            text = _QUOTED_PARAMETER_PAIR.sub(r"\1", inner)
        else:
            text = text.strip()
        if key == wanted:
            plain = text if plain is None else plain
        elif key == wanted + "*":
            sections = {0: (True, text)}
            break
        elif key.startswith(wanted + "*"):
            number = key[len(wanted) + 1 :]
            encoded = number.endswith("*")
            number = number.removesuffix("*")
            if number.isascii() and number.isdigit() and len(number) <= 3:
                sections.setdefault(int(number), (encoded, text))
    if sections:
        decoded = _db_safe(_rfc2231([sections[n] for n in sorted(sections)]).strip())
        if decoded:
            return decoded
    if plain is None:
        return None
    return _header_text(plain) or None


def _rfc2231(sections: list[tuple[bool, str]]) -> str:
    """Join RFC 2231 sections as bytes, then decode them by the first section's charset."""
    charset: str | None = None
    data = bytearray()
    for index, (encoded, text) in enumerate(sections):
        raw_text = text.encode("utf-8", "surrogateescape")
        if encoded:
            if index == 0 and raw_text.count(b"'") >= 2:
                declared, _language, raw_text = raw_text.split(b"'", 2)
                charset = declared.decode("ascii", "replace")
            data += unquote_to_bytes(raw_text)
        else:
            data += raw_text
    return _decode(bytes(data), charset)


def _transfer_encoding(part: Message) -> tuple[str, str]:
    """(as written, lower-cased; normalised): the stdlib only decodes the exact tokens."""
    written = str(part.get("content-transfer-encoding", "")).lower()
    return written, written.strip().strip("\"'").strip()


def _payload(part: Message) -> bytes:
    """The decoded payload of a leaf part, best effort for broken encodings."""
    written, cte = _transfer_encoding(part)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return b""
    if cte == "base64":
        # The stdlib returns the base64 text itself when its length is invalid, and does not
        # decode at all when the header is " base64" or "Base64 ".
        length_defect = any(
            isinstance(defect, email.errors.InvalidBase64LengthDefect) for defect in part.defects
        )
        if written != cte or length_defect:
            return _b64decode(data)
    elif cte == "quoted-printable" and written != cte:
        return binascii.a2b_qp(data)
    return data


def _body(part: Message, headers: dict[str, str]) -> str:
    charset = _parameter(headers.get("content-type", ""), "charset")
    text = _decode(_payload(part), charset)
    return _db_safe(text.replace("\r\n", "\n"))


_NOT_BASE64 = bytes(
    set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
)


def _b64decode(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)  # skips line breaks and other non-alphabet bytes
    except binascii.Error:
        pass
    # A padding or length problem: keep the alphabet only, drop a dangling sixth of a byte,
    # pad to a multiple of 4.
    clean = data.translate(None, _NOT_BASE64)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def _leaf_size(part: Message) -> int:
    _, cte = _transfer_encoding(part)
    if cte == "base64":
        encoded = _encoded_payload(part)
        if encoded is not None:
            return _base64_size(encoded)
    return len(_payload(part))


def _encoded_payload(part: Message) -> str | None:
    """A leaf's payload as it is on the wire; None if the stdlib fails to give it.

    When the payload has 8-bit bytes, get_payload() decodes it by the charset parameter, and
    that raises for some (an RFC 2231 charset is a tuple there, "idna" rejects "replace").
    """
    try:
        payload = part.get_payload()
    except (LookupError, UnicodeError, TypeError, ValueError):
        return None
    return payload if isinstance(payload, str) else None


def _base64_size(encoded: str) -> int:
    # Everything but line breaks, blanks and padding is alphabet in well-formed base64; every
    # 4 alphabet characters are 3 bytes.
    junk = sum(encoded.count(c) for c in ("\n", "\r", " ", "\t", "="))
    return (len(encoded) - junk) * 3 // 4


def _message_size(part: Message) -> int:
    """Estimated size of the message(s) attached in a message/* part, re-serialised.

    Iterative, and without re-serialising (the generator recurses and copies): headers as
    "Name: value" lines, payloads as their encoded length, boundary lines. Header folding and
    LF-only line endings make it a few percent off.
    """
    children = part.get_payload() if part.is_multipart() else None
    if not isinstance(children, list):  # not parsed as a message: its payload is the message
        return _leaf_size(part)
    total = 0
    stack = [child for child in children if isinstance(child, Message)]
    visited = 0
    while stack and visited < MAX_PARTS:
        node = stack.pop()
        visited += 1
        total += sum(len(name) + len(str(value)) + 4 for name, value in node.raw_items()) + 2
        if node.is_multipart():
            inner = node.get_payload()
            if isinstance(inner, list):
                stack.extend(child for child in inner if isinstance(child, Message))
            if isinstance(inner, list) and node.get_content_maintype() == "multipart":
                boundary = len(node.get_boundary() or "")
                total += (boundary + 6) * (len(inner) + 1) + 2
                total += len(node.preamble or "") + len(node.epilogue or "")
            continue
        encoded = _encoded_payload(node)
        total += len(encoded) if encoded is not None else len(_payload(node))
    return total


# --- charsets ------------------------------------------------------------------------------

# Labels that mean a superset in practice (what browsers do), or that Python does not know.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "unicode-1-1-utf-7": "utf-7",
}
# Python codecs that are not mail charsets: they interpret escapes, or fail even with
# errors="replace".
_NOT_CHARSETS = frozenset(
    ("unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "ascii")
)


@lru_cache(maxsize=256)
def _codec(charset: str | None) -> str | None:
    """The codec for a declared charset; None for none, us-ascii, or one we cannot use."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    return None if name.replace("-", "_") in _NOT_CHARSETS else name


def _decode(data: bytes, charset: str | None) -> str:
    """Bytes to text by the declared charset, with U+FFFD for what does not decode.

    Without a usable charset (none, us-ascii, unknown): UTF-8 if the bytes are valid UTF-8,
    else windows-1252, which is what undeclared 8-bit mail nearly always is (a superset of
    Latin-1's printable characters).
    """
    codec = _codec(charset)
    if codec is not None:
        try:
            return data.decode(codec, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass  # "base64" and the like are codecs but not text encodings
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def _db_safe(text: str) -> str:
    """Replace what PostgreSQL text and JSONB cannot store (NUL) or encode (lone surrogates)."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return _UNSAFE.sub("\ufffd", text)


# --- headers -------------------------------------------------------------------------------


def _fix_8bit(value: str) -> str:
    """Raw 8-bit header bytes (surrogate-escaped by the parser) as UTF-8, else windows-1252."""
    if value.isascii():
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already real text
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _unfold(value: str) -> str:
    # RFC 5322 2.2.3: unfolding removes the CRLF before the whitespace; the whitespace stays.
    return value.replace("\r", "").replace("\n", "") if "\n" in value or "\r" in value else value


def _header_text(value: str) -> str:
    return _db_safe(_decode_words(_fix_8bit(_unfold(value))).strip())


# RFC 2047 encoded-word, leniently: the encoded text may hold blanks (some mailers forget to
# encode them), and the charset may carry an RFC 2231 language ("utf-8*en").
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words; leave everything else as it is.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 section 6.2), and adjacent
    words in the same charset are joined as bytes before decoding, so a character split
    across two words (as some encoders do) comes out whole.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    previous_was_word = False
    position = 0

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append(_decode(bytes(pending), pending_charset))
            pending = bytearray()

    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        position = match.end()
        if not (previous_was_word and (not gap or gap.isspace())):
            flush()
            out.append(gap)
        charset = match.group(1).partition("*")[0]
        payload = match.group(3)
        if match.group(2) in "bB":
            data = _b64decode(payload.encode("ascii", "ignore"))
        else:
            data = binascii.a2b_qp(payload.encode("utf-8", "replace"), header=True)
        if pending and charset.lower() != pending_charset.lower():
            flush()
        pending_charset = charset
        pending += data
        previous_was_word = True
    flush()
    out.append(text[position:])
    return "".join(out)


_MSG_ID = re.compile(r"<([^<>]*)>")


def _msg_ids(values: list[str] | tuple[str, ...], *, bare_ok: bool) -> list[str]:
    """msg-ids without brackets, in order, deduplicated.

    Without any <...>: for Message-ID (`bare_ok`) the first word is the id (some mailers
    omit the brackets); for In-Reply-To and References, the words that contain an "@" (the
    rest is phrases like "John's message of ...").
    """
    found: list[str] = []
    for value in values:
        text = _fix_8bit(_unfold(value))
        ids = _MSG_ID.findall(text)
        if not ids:
            words = text.replace(",", " ").split()
            ids = words[:1] if bare_ok else [w for w in words if "@" in w]
        found.extend(ids)
    out: dict[str, None] = {}
    for candidate in found:
        msg_id = _db_safe("".join(candidate.split()).strip("<>"))  # no whitespace in a msg-id
        if msg_id and len(msg_id.encode("utf-8")) <= MAX_MSG_ID_BYTES:
            out[msg_id] = None
    return list(out)


# The common forms of an address-list item: "Quoted, Name" <a@b>, Plain Name <a@b>, a@b.
_QUOTED_NAME_ADDR = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*<([^<>\s"]*)>\s*')
_PLAIN_NAME_ADDR = re.compile(r'\s*([^"<>()\[\],;:\\]*?)\s*<([^<>\s"]*)>\s*')
_BARE_ADDR = re.compile(r'\s*([^\s"<>()\[\],;:\\@]+@[^\s"<>()\[\],;:\\@]+)\s*')
_ITEMS = re.compile(r'(?:"(?:[^"\\]|\\.)*"|<[^<>]*>|[^",<])+')
_QUOTED_PAIR = re.compile(r"\\(.)")
_QUOTED_PARAMETER_PAIR = re.compile(r'\\([\\"])')  # email.utils.unquote: keeps C:\\Users


def _addresses(values: list[str] | tuple[str, ...]) -> tuple[Address, ...]:
    if not values:
        return ()
    fields = [_fix_8bit(_unfold(value)) for value in values]
    pairs = _simple_addresses(fields)
    if pairs is None:
        try:
            pairs = getaddresses(fields)
        except RecursionError:  # nested comments "((((..." recurse once per level
            pairs = getaddresses([f.replace("(", " ").replace(")", " ") for f in fields])
    out: list[Address] = []
    for name, address in pairs:
        address = _db_safe(address.strip())
        if address:
            # Decoded after splitting: a decoded name may contain a comma.
            out.append(Address(_db_safe(_decode_words(name).strip()) or None, address))
    return tuple(out)


def _simple_addresses(fields: list[str]) -> list[tuple[str, str]] | None:
    """getaddresses' result for lists of the common forms; None for anything else.

    getaddresses walks the text a character at a time in Python: it was a sixth of the
    parse time. Groups, comments, route addresses and quoted local parts go to it. One
    difference, on purpose: an unquoted name may contain "@" (Outlook writes
    `bob@x.example <bob@x.example>`): one mailbox here, two (a name-less "bob@x.example" and
    another) for getaddresses.
    """
    pairs: list[tuple[str, str]] = []
    for field in fields:
        matched = 0
        for item in _ITEMS.finditer(field):
            if field[matched : item.start()].strip(", \t"):
                return None  # something the item pattern could not take (a stray quote)
            matched = item.end()
            text = item.group()
            if not text.strip():
                continue
            if match := _QUOTED_NAME_ADDR.fullmatch(text):
                pairs.append((_QUOTED_PAIR.sub(r"\1", match.group(1)), match.group(2)))
            elif match := _PLAIN_NAME_ADDR.fullmatch(text):
                pairs.append((" ".join(match.group(1).split()), match.group(2)))
            elif match := _BARE_ADDR.fullmatch(text):
                pairs.append(("", match.group(1)))
            else:
                return None
        if field[matched:].strip(", \t"):
            return None
    return pairs


def _date(values: list[str] | tuple[str, ...]) -> datetime | None:
    if not values:
        return None
    try:
        value = parsedate_to_datetime(_fix_8bit(_unfold(values[0])).strip())
    except (ValueError, TypeError, OverflowError, IndexError):
        return None  # garbage, obsolete forms it cannot read, impossible fields or offsets
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- snippet -------------------------------------------------------------------------------

# Zero-width and soft-hyphen characters: newsletters pad their preheader with them.
_INVISIBLE = re.compile("[\u00ad\u034f\u200b-\u200f\u2060-\u2064\ufeff]")


def _collapse(text: str) -> str:
    return " ".join(_INVISIBLE.sub("", text).split())


def _snippet(text: str | None, markup: str | None) -> str:
    if text and not text.isspace():
        # Only a prefix is collapsed: collapse(text[:n]) is always a prefix of collapse(text).
        size = 4 * SNIPPET_LENGTH
        while True:
            snippet = _collapse(text[:size])
            if len(snippet) >= SNIPPET_LENGTH or size >= len(text):
                return snippet[:SNIPPET_LENGTH]
            size *= 4
    if markup:
        return _html_text(markup)[:SNIPPET_LENGTH]
    return ""


_TAG_START = re.compile(r"<[a-zA-Z/!?]")
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9:-]*)")
_SKIPPED = {
    name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in ("script", "style", "title")
}
_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "em", "font", "i", "kbd", "mark"}
    | {"q", "s", "small", "span", "strike", "strong", "sub", "sup", "tt", "u", "wbr", "o:p"}
)


def _html_text(markup: str) -> str:
    """The visible text at the start of an HTML body, whitespace collapsed.

    A linear scan, not an HTML parser: tags, comments, and script/style/title contents are
    dropped; block tags separate words. It stops once it has enough for a snippet.
    """
    pieces: list[str] = []
    collected = 0
    position, end = 0, len(markup)
    while position < end and collected <= SNIPPET_LENGTH:
        lt = markup.find("<", position)
        chunk = markup[position : lt if lt != -1 else end]
        if chunk:
            visible = html.unescape(chunk)
            words = _collapse(visible)
            if words:
                # Keep the chunk's edge blanks (&nbsp; included) as word separators.
                lead = " " if visible[:1].isspace() else ""
                trail = " " if visible[-1:].isspace() else ""
                pieces.append(lead + words + trail)
                collected += len(words) + 1
        if lt == -1:
            break
        if markup.startswith("<!--", lt):
            close = markup.find("-->", lt + 4)
            position = close + 3 if close != -1 else end
            continue
        if not _TAG_START.match(markup, lt):  # "a < b": a literal "<", as browsers read it
            pieces.append("<")
            position = lt + 1
            continue
        gt = markup.find(">", lt + 1)
        position = gt + 1 if gt != -1 else end
        tag = _TAG_NAME.match(markup, lt)
        if tag is None:  # <!DOCTYPE ...>, <?xml ...?>, <![if ...]>
            continue
        name = tag.group(1).lower()
        if name not in _INLINE:
            pieces.append(" ")
        skipped = _SKIPPED.get(name)
        if skipped is not None and not markup.startswith("</", lt):
            closing = skipped.search(markup, position)
            position = closing.end() if closing else end
    return _collapse("".join(pieces))
