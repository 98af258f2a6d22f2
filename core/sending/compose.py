"""What a user asks to send, validated (INVALID_INPUT with the field), and its MIME."""

from __future__ import annotations

import dataclasses
import email.policy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from typing import Any

from core.accounts.inputs import validate_address
from core.attachments.headers import media_type, safe_filename
from core.errors import ErrorCode, ServiceError
from core.mail.msgid import is_msg_id
from core.sending.html_text import html_to_text

MAX_RECIPIENTS = 100
MAX_SUBJECT = 998  # RFC 5322's line limit, before folding
MAX_BODY_CHARS = 5_000_000


MAX_ATTACHMENTS = 20


@dataclass(frozen=True)
class FileAttachment:
    """A file to send: its name and type as the client gave them (checked), its bytes."""

    filename: str | None
    content_type: str | None
    data: bytes = dataclasses.field(repr=False)


@dataclass(frozen=True)
class Draft:
    """A message as the API received it (``in_reply_to``: a Message id, or None)."""

    to: Sequence[str]
    subject: str
    body_text: str | None = None
    body_html: str | None = None
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    in_reply_to: str | None = None
    attachments: Sequence[FileAttachment] = ()


@dataclass(frozen=True)
class ValidDraft:
    to: list[str]  # "Name <address>" or "address", normalized
    cc: list[str]
    bcc: list[str]
    subject: str
    body_text: str
    body_html: str | None
    attachments: tuple[FileAttachment, ...] = ()

    @property
    def envelope_recipients(self) -> list[str]:
        return envelope_recipients([*self.to, *self.cc, *self.bcc])


def envelope_recipients(recipients: Sequence[str]) -> list[str]:
    """The bare addresses for RCPT TO (from To, Cc and Bcc), each once."""
    return list(dict.fromkeys(parseaddr(r)[1] for r in recipients))


def needs_smtputf8(addresses: Sequence[str]) -> bool:
    """Non-ASCII addresses need the SMTPUTF8 extension (names are encoded, not raw)."""
    return not all(a.isascii() for a in addresses)


def _recipient(text: str, field: str) -> str:
    """``address`` or ``Name <address>``, normalized; INVALID_INPUT otherwise."""
    text = text.strip()
    if any(c in text for c in "\r\n\x00"):
        raise ServiceError(ErrorCode.INVALID_INPUT, "An address has a line break.", field)
    name, address = ("", text)
    if "<" in text:
        # Exactly one address: "Bob <b@x>, Eve <e@y>" is two, and parseaddr would quietly
        # keep one of them.
        parsed = getaddresses([text])
        if len(parsed) != 1 or not parsed[0][1]:
            raise ServiceError(ErrorCode.INVALID_INPUT, f"{text!r} is not one address.", field)
        name, address = parsed[0]
    normalized = validate_address(address, field)
    return formataddr((name.strip(), normalized)) if name.strip() else normalized


def _recipients(values: Sequence[str], field: str) -> list[str]:
    return [_recipient(value, f"{field}[{index}]") for index, value in enumerate(values)]


def validate_draft(draft: Draft) -> ValidDraft:
    to = _recipients(draft.to, "to")
    cc = _recipients(draft.cc, "cc")
    bcc = _recipients(draft.bcc, "bcc")
    if not to:
        raise ServiceError(ErrorCode.INVALID_INPUT, "Add at least one recipient.", "to")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise ServiceError(
            ErrorCode.INVALID_INPUT, f"At most {MAX_RECIPIENTS} recipients per message.", "to"
        )
    for value, field in (
        (draft.subject, "subject"),
        (draft.body_text, "bodyText"),
        (draft.body_html, "bodyHtml"),
    ):
        if value is not None and "\x00" in value:
            raise ServiceError(ErrorCode.INVALID_INPUT, "The text has a NUL character.", field)
    subject = " ".join(draft.subject.split())  # no line breaks in a header
    if not subject:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The subject is empty.", "subject")
    if len(subject) > MAX_SUBJECT:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"The subject is longer than {MAX_SUBJECT} characters.",
            "subject",
        )
    html = draft.body_html if draft.body_html and draft.body_html.strip() else None
    text = draft.body_text if draft.body_text and draft.body_text.strip() else None
    if text is None and html is None:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The message has no body.", "bodyText")
    for value, field in ((text, "bodyText"), (html, "bodyHtml")):
        if value is not None and len(value) > MAX_BODY_CHARS:
            raise ServiceError(ErrorCode.INVALID_INPUT, "The body is too long.", field)
    if len(draft.attachments) > MAX_ATTACHMENTS:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"At most {MAX_ATTACHMENTS} attachments per message.",
            "attachments",
        )
    return ValidDraft(
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        body_text=text if text is not None else html_to_text(html or ""),
        body_html=html,
        attachments=tuple(
            FileAttachment(
                safe_filename(a.filename, f"attachment-{n}"),
                media_type(a.content_type or "application/octet-stream"),
                a.data,
            )
            for n, a in enumerate(draft.attachments, 1)
        ),
    )


def new_message_id(from_address: str) -> str:
    """A globally unique Message-ID (without brackets) in the sender's domain."""
    domain = from_address.rpartition("@")[2] or "mailsync.invalid"
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = "mailsync.invalid"
    return f"{uuid.uuid4().hex}@{domain}"


@dataclass(frozen=True)
class Headers:
    from_address: str
    from_name: str | None
    message_id: str
    date: datetime
    in_reply_to: str | None
    references: Sequence[str]


class HeaderInjectionError(ValueError):
    """A header value would hold a line break or NUL once written (never sent)."""


# Fold only past RFC 5322's hard limit: at 78 columns the email package RFC 2047-encodes
# a Message-ID longer than a line (Outlook's and SES's are), and In-Reply-To/References
# written that way no longer thread in the recipient's client. Where the running Python
# has it (3.11.10+, 3.12.5+), the email package also refuses to generate a header that
# would spill into the next line (verify_generated_headers, CVE-2024-6923).
_VERIFY: dict[str, Any] = (
    {"verify_generated_headers": True}
    if hasattr(email.policy.SMTP, "verify_generated_headers")
    else {}
)
_POLICY = email.policy.SMTP.clone(max_line_length=998, **_VERIFY)
_UTF8_POLICY = email.policy.SMTPUTF8.clone(max_line_length=998, **_VERIFY)
_UNSAFE_IN_HEADER = frozenset("\r\n\x00")


def _set_header(message: EmailMessage, name: str, value: object) -> None:
    """Set a header and check what the email package made of it: encoded words are decoded
    on the way in, so a clean-looking ``=?us-ascii?Q?=0D=0A?=`` is checked as the CR LF
    it becomes. Whatever the value's source, nothing with CR, LF or NUL is written."""
    if _UNSAFE_IN_HEADER.intersection(str(value)):
        raise HeaderInjectionError(f"the {name} header would hold a line break or NUL")
    message[name] = value
    if _UNSAFE_IN_HEADER.intersection(str(message[name])):
        raise HeaderInjectionError(f"the {name} header would hold a line break or NUL")


def _header_names(raw: bytes) -> list[str]:
    """The names of the header fields of generated bytes, in order."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode("ascii", "replace").lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def build_mime(draft: ValidDraft, headers: Headers) -> bytes:
    """The exact bytes sent and filed in the Sent folder; Bcc is never among the headers.

    In-Reply-To and References come from stored mail, which strangers wrote: only msg-ids
    of the RFC 5322 grammar are written (core.mail.msgid), and the generated header block
    must hold exactly the fields set here, or nothing is sent."""
    utf8 = needs_smtputf8([headers.from_address, *draft.envelope_recipients])
    message = EmailMessage(policy=(_UTF8_POLICY if utf8 else _POLICY))
    username, _, domain = headers.from_address.rpartition("@")
    name = " ".join((headers.from_name or "").split())  # a header holds no line break
    _set_header(message, "From", Address(name, username, domain))
    _set_header(message, "To", ", ".join(draft.to))
    if draft.cc:
        _set_header(message, "Cc", ", ".join(draft.cc))
    _set_header(message, "Subject", draft.subject)
    _set_header(message, "Date", format_datetime(headers.date))
    if not is_msg_id(headers.message_id):
        raise HeaderInjectionError("the Message-ID is not a msg-id")
    _set_header(message, "Message-ID", f"<{headers.message_id}>")
    if headers.in_reply_to and is_msg_id(headers.in_reply_to):
        _set_header(message, "In-Reply-To", f"<{headers.in_reply_to}>")
    references = [r for r in headers.references if is_msg_id(r)]
    if references:
        _set_header(message, "References", " ".join(f"<{r}>" for r in references))
    expected = [key.lower() for key in message]
    message.set_content(draft.body_text)
    if draft.body_html is not None:
        message.add_alternative(draft.body_html, subtype="html")
    for attachment in draft.attachments:  # names and types checked by validate_draft
        maintype, _, subtype = (attachment.content_type or "").partition("/")
        message.add_attachment(
            attachment.data, maintype, subtype, filename=attachment.filename or "attachment"
        )
    raw = message.as_bytes()
    written = [n for n in _header_names(raw) if n not in _MIME_FIELDS]
    if written != expected:
        raise HeaderInjectionError(f"the generated header block has {written}, not {expected}")
    return raw


# Added by set_content/add_alternative; everything else must be one of ours.
_MIME_FIELDS = frozenset({"mime-version", "content-type", "content-transfer-encoding"})
