"""The MIME structure: bodies, attachments and their sizes."""

from __future__ import annotations

import binascii
import email
import email.errors
import email.policy
import re
from email.message import Message
from urllib.parse import unquote_to_bytes

from core.mail.parsing._text import (
    _QUOTED_PARAMETER_PAIR,
    _b64decode,
    _db_safe,
    _decode,
    _header_text,
    _unfold,
)
from core.mail.parsing.model import MAX_DEPTH, MAX_PARTS, AttachmentInfo

# --- MIME structure ------------------------------------------------------------------------


def _walk(msg: Message) -> tuple[str | None, str | None, tuple[AttachmentInfo, ...]]:
    """The first text/plain and text/html body parts, and the attachments, in document order.

    Iterative (Message.walk recurses) and bounded by MAX_DEPTH and MAX_PARTS. Parts of an
    attached message (message/*) are not looked into: it is one attachment. Each attachment
    has its IMAP section number: a multipart's children are numbered 1, 2, ... under their
    parent's number, and a message that is not multipart is part "1" (RFC 3501 6.4.5).
    """
    text: str | None = None
    markup: str | None = None
    attachments: list[AttachmentInfo] = []
    stack: list[tuple[Message, int, str]] = [(msg, 0, "")]
    visited = 0
    while stack and visited < MAX_PARTS:
        part, depth, section = stack.pop()
        visited += 1
        content_type = _db_safe(part.get_content_type())
        maintype = content_type.partition("/")[0]
        children = part.get_payload() if part.is_multipart() else None
        if maintype == "multipart" and isinstance(children, list):
            if depth < MAX_DEPTH:
                numbered = [
                    (child, depth + 1, f"{section}.{n}" if section else str(n))
                    for n, child in enumerate(children, 1)
                    if isinstance(child, Message)
                ]
                stack.extend(reversed(numbered))
            continue
        headers = _mime_headers(part)
        filename = _filename(headers)
        where = _location(part, headers, section or "1")
        if maintype == "message":
            attachments.append(AttachmentInfo(filename, content_type, _message_size(part), *where))
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
        attachments.append(AttachmentInfo(filename, content_type, _leaf_size(part), *where))
    return text or None, markup or None, tuple(attachments)


_CONTENT_ID = re.compile(r"^\s*<?\s*([^<>\s]{1,500})\s*>?\s*$")


def _location(
    part: Message, headers: dict[str, str], section: str
) -> tuple[str, str, str | None, bool]:
    """(section, transfer encoding, Content-ID, inline) of a leaf part."""
    content_id: str | None = None
    for name, value in part.raw_items():
        if name.lower() == "content-id":
            match = _CONTENT_ID.match(_unfold(str(value)))
            content_id = _db_safe(match.group(1)) if match else None
            break
    _, cte = _transfer_encoding(part)
    disposition = headers.get("content-disposition", "").partition(";")[0].strip().lower()
    inline = disposition == "inline" or (not disposition and content_id is not None)
    return section, _db_safe(cte[:40]), content_id, inline


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
