"""What parse_message returns, and the limits it works within."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SNIPPET_LENGTH = 200
MAX_DEPTH = 64
"""MIME parts nested deeper than this are ignored (real mail rarely nests beyond ~6)."""
MAX_PARTS = 1000
"""At most this many MIME parts are looked at; later ones are ignored."""
MAX_REFERENCES = 100
"""References beyond this are trimmed, keeping the first (the thread root) and the latest."""


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
    part: str = "1"
    """Its IMAP section number (RFC 3501 6.4.5), e.g. "2" or "1.3": ``BODY[part]`` is its body."""
    encoding: str = ""
    """Content-Transfer-Encoding, lower-cased ("base64", "quoted-printable"; "" for none)."""
    content_id: str | None = None
    """Content-ID without angle brackets: an HTML body refers to it as ``cid:...``."""
    inline: bool = False
    """Shown within the body (Content-Disposition: inline, or a Content-ID and no disposition)."""


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
