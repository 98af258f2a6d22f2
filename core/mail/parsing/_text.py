"""Text: charsets, header decoding, addresses, dates, snippets."""

from __future__ import annotations

import binascii
import codecs
import html
import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from core.mail.msgid import is_msg_id
from core.mail.parsing.model import SNIPPET_LENGTH, Address

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
    """msg-ids without brackets, in order, deduplicated; only those of the RFC 5322 grammar
    (core.mail.msgid), since replies write them back into In-Reply-To and References.

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
        msg_id = "".join(candidate.split()).strip("<>")  # folding whitespace inside an id
        if is_msg_id(msg_id):  # anything else is dropped: it is written back in replies
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
        pairs = _full_addresses(fields)
    out: list[Address] = []
    for name, address in pairs:
        address = _db_safe(address.strip())
        if address:
            # Decoded after splitting: a decoded name may contain a comma.
            out.append(Address(_db_safe(_decode_words(name).strip()) or None, address))
    return tuple(out)


def _full_addresses(fields: list[str]) -> list[tuple[str, str]]:
    """getaddresses for what the fast path leaves, the same on every Python we support.

    A trailing comma ("a@b, c@d,", common from hand-edited lists) is an empty item, dropped:
    the strict getaddresses of 3.13 (and of 3.11/3.12 patch releases since 2024,
    CVE-2023-27043) rejects the whole field as [("", "")] and would lose every address.
    """
    fields = [field.rstrip(", \t") for field in fields]
    try:
        return getaddresses(fields)
    except RecursionError:  # nested comments "((((..." recurse once per level
        return getaddresses([f.replace("(", " ").replace(")", " ") for f in fields])


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
