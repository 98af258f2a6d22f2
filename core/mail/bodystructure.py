"""A message's attachments from its IMAP BODYSTRUCTURE (RFC 3501 7.4.2), without its body.

For messages too large to download: the structure names each part's type, parameters,
encoding, size and disposition. Untrusted input, so the walk is bounded like the MIME
parser's (``MAX_DEPTH`` levels, ``MAX_PARTS`` parts): what lies beyond is ignored, and a
malformed structure yields what was read before the fault, never an exception.
"""

from __future__ import annotations

import re

from core.mail.parsing.model import MAX_DEPTH, MAX_PARTS, AttachmentInfo

Node = list["Node | str | None"]
_TOKEN = re.compile(rb'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()"]+')
_ESCAPED = re.compile(r"\\(.)")


class _Malformed(Exception):
    pass


def attachments_of(item_text: bytes) -> tuple[AttachmentInfo, ...]:
    """The attachments the ``BODYSTRUCTURE (...)`` in a FETCH item describes; () if none
    or if there is no usable structure."""
    start = item_text.find(b"BODYSTRUCTURE (")
    if start < 0:
        return ()
    tree = _parse(item_text, start + len(b"BODYSTRUCTURE "))
    if tree is None:
        return ()
    found: list[AttachmentInfo] = []
    _walk(tree, 0, found, [0], "")
    return tuple(found)


def _parse(text: bytes, position: int) -> Node | None:
    """The parenthesized list starting at ``position``, as nested lists of strings (NIL is
    None); None when it is deeper than the limit or does not close."""
    stack: list[Node] = []
    for match in _TOKEN.finditer(text, position):
        token = match.group()
        if token == b"(":
            if len(stack) > MAX_DEPTH * 2:  # a part's own lists count too
                return None
            stack.append([])
        elif token == b")":
            if not stack:
                return None
            done = stack.pop()
            if not stack:
                return done
            stack[-1].append(done)
        elif not stack:
            return None
        elif token.startswith(b'"'):
            stack[-1].append(_ESCAPED.sub(r"\1", token[1:-1].decode("utf-8", "replace")))
        else:
            word = token.decode("utf-8", "replace")
            stack[-1].append(None if word.upper() == "NIL" else word)
    return None


def _walk(
    node: Node, depth: int, found: list[AttachmentInfo], parts: list[int], section: str
) -> None:
    """``section``: the IMAP section number of ``node`` ("" for the message itself), so that
    an attachment of a message whose body was not downloaded is fetched by its own part."""
    if depth > MAX_DEPTH or parts[0] >= MAX_PARTS:
        return
    parts[0] += 1
    if node and isinstance(node[0], list):  # multipart: its parts, then the subtype
        for number, child in enumerate(node, start=1):
            if not isinstance(child, list):
                break
            _walk(child, depth + 1, found, parts, f"{section}.{number}" if section else str(number))
        return
    try:
        attachment = _leaf(node, section or "1")
    except _Malformed:
        return
    if attachment is not None:
        found.append(attachment)


def _leaf(node: Node, section: str) -> AttachmentInfo | None:
    kind, subtype = _text(node, 0).lower(), _text(node, 1).lower()
    params = _params(node[2] if len(node) > 2 else None)
    encoding = _text(node, 5).lower()
    octets = int(_text(node, 6)) if _text(node, 6).isdigit() else 0
    # The disposition follows the extension fields, whose place depends on the type.
    # text: lines, md5, disposition; message/rfc822: envelope, body, lines, md5, disposition.
    at = 9 if kind == "text" else 11 if (kind, subtype) == ("message", "rfc822") else 8
    disposition = node[at] if len(node) > at else None
    disposition_type = ""
    disposition_params: dict[str, str] = {}
    if isinstance(disposition, list) and disposition:
        disposition_type = _text(disposition, 0).lower()
        disposition_params = _params(disposition[1] if len(disposition) > 1 else None)
    filename = disposition_params.get("filename") or params.get("name")
    inline_text = kind == "text" and disposition_type != "attachment" and filename is None
    if inline_text or kind == "multipart":
        return None
    # Decoded size, estimated: base64 in the usual 76-character lines with CRLF carries 57
    # bytes in 78 (the exact size is known once the part is downloaded).
    size = octets * 57 // 78 if encoding == "base64" else octets
    content_id = node[3] if len(node) > 3 and isinstance(node[3], str) else None
    if content_id is not None:
        content_id = content_id.strip().removeprefix("<").removesuffix(">") or None
    inline = disposition_type == "inline" or (content_id is not None and not disposition_type)
    return AttachmentInfo(
        filename,
        f"{kind}/{subtype}",
        size,
        part=section,
        encoding=encoding if encoding in ("base64", "quoted-printable") else "",
        content_id=content_id,
        inline=inline,
    )


def _text(node: Node, index: int) -> str:
    if index >= len(node):
        raise _Malformed
    value = node[index]
    if isinstance(value, list):
        raise _Malformed
    return value or ""


def _params(value: Node | str | None) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    items = [v if isinstance(v, str) else "" for v in value]
    return {items[i].lower(): items[i + 1] for i in range(0, len(items) - 1, 2)}
