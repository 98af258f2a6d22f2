"""A fast path that builds the stdlib parser's tree for well-formed messages."""

from __future__ import annotations

import email
import email.errors
import email.policy
import logging
import re
from email.message import Message

from core.mail.parsing.model import MAX_DEPTH, MAX_PARTS

log = logging.getLogger(__name__)

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
