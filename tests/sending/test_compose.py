"""Composing: no header injection, Bcc never in the headers, a readable text part."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import ErrorCode, ServiceError
from core.sending.compose import Draft, Headers, build_mime, validate_draft
from core.sending.html_text import html_to_text
from tests.sending.helpers import parse, text_body


def _headers(from_name: str = "Ann") -> Headers:
    return Headers(
        from_address="ann@example.com",
        from_name=from_name,
        message_id="abc123@example.com",
        date=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        in_reply_to=None,
        references=(),
    )


def test_line_breaks_cannot_add_headers() -> None:
    draft = validate_draft(
        Draft(to=["bob@example.org"], subject="Hi\r\nBcc: spy@evil.example", body_text="x")
    )
    message = parse(build_mime(draft, _headers(from_name="Ann\nX-Injected: yes")))
    assert message["Subject"] == "Hi Bcc: spy@evil.example"
    assert message["From"] == '"Ann X-Injected: yes" <ann@example.com>'
    assert message["X-Injected"] is None and message["Bcc"] is None


def test_bcc_is_for_the_envelope_only_and_names_are_encoded() -> None:
    draft = validate_draft(
        Draft(
            to=["Zoë Müller <zoe@example.org>"],
            cc=["carl@example.org"],
            bcc=["boss@example.org", "zoe@example.org"],
            subject="Grüße",
            body_text="Hallo",
        )
    )
    assert draft.envelope_recipients == ["zoe@example.org", "carl@example.org", "boss@example.org"]
    raw = build_mime(draft, _headers())
    assert raw.isascii() and b"boss@example.org" not in raw
    message = parse(raw)
    assert message["To"] == "Zoë Müller <zoe@example.org>"
    assert message["Subject"] == "Grüße"
    assert text_body(message) == "Hallo\n"


def test_text_part_from_html() -> None:
    markup = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Offer</h1><p>Dear Bob,<br>thanks &amp; regards.</p>"
        "<ul><li>one</li><li>two</li></ul>"
        "<p>Details: <a href='https://example.org/o/1'>here</a>, "
        "<a href='https://example.org'>https://example.org</a></p>"
        "<script>alert(1)</script></body></html>"
    )
    assert html_to_text(markup) == (
        "Offer\n\nDear Bob,\nthanks & regards.\n\n- one\n- two\n\n"
        "Details: here (https://example.org/o/1), https://example.org"
    )


def test_long_message_ids_are_not_encoded_in_reply_headers() -> None:
    """Outlook's and SES's ids are longer than a 78-column line; encoded, they stop
    threading in the recipient's client."""
    outlook = "BY5PR11MB39370C5A1B2C3D4E5F60718293A4B5C6@BY5PR11MB3937.namprd11.prod.outlook.com"
    ses = "0100018c1a2b3c4d-5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9-000000@email.amazonses.com"
    draft = validate_draft(Draft(to=["bob@example.org"], subject="Re: offer", body_text="ok"))
    headers = Headers(
        from_address="ann@example.com",
        from_name="Ann",
        message_id="abc123@example.com",
        date=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        in_reply_to=outlook,
        references=(ses, outlook),
    )
    raw = build_mime(draft, headers)
    assert b"=?" not in raw.split(b"\r\n\r\n")[0]
    message = parse(raw)
    assert message["In-Reply-To"] == f"<{outlook}>"
    assert message["References"].split() == [f"<{ses}>", f"<{outlook}>"]


@pytest.mark.parametrize(
    ("recipient", "accepted"),
    [
        ("Bob <bob@example.org>", True),
        ('"Smith, Bob" <bob@example.org>', True),
        ("Bob <bob@example.org>, Eve <eve@evil.example>", False),
        ("=?utf-8?q?x@evil.example,?= <bob@example.org>", False),
        ("bob@example.org, eve@evil.example", False),
        ("bob@example.org\x00", False),
    ],
)
def test_a_recipient_is_exactly_one_address(recipient: str, accepted: bool) -> None:
    draft = Draft(to=[recipient], subject="Hi", body_text="x")
    if accepted:
        assert validate_draft(draft).envelope_recipients == ["bob@example.org"]
        return
    with pytest.raises(ServiceError) as refused:
        validate_draft(draft)
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_INPUT, "to[0]")


@pytest.mark.parametrize("field", ["subject", "bodyText", "bodyHtml"])
def test_nul_characters_are_invalid_input(field: str) -> None:
    values = {"subject": "Hi", "body_text": "x", "body_html": "<p>x</p>"}
    key = {"subject": "subject", "bodyText": "body_text", "bodyHtml": "body_html"}[field]
    values[key] += "\x00"
    with pytest.raises(ServiceError) as refused:
        validate_draft(Draft(to=["bob@example.org"], **values))
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_INPUT, field)
