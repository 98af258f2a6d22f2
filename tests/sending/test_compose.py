"""Composing: no header injection, Bcc never in the headers, a readable text part."""

from __future__ import annotations

from datetime import UTC, datetime

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
