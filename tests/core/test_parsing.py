"""The message parser: raw RFC 5322 bytes to stored fields, on good, odd and hostile input."""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import pickle
import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest

from core.mail import parsing
from core.mail.parsing import (
    MAX_DEPTH,
    MAX_REFERENCES,
    SNIPPET_LENGTH,
    Address,
    AttachmentInfo,
    ParsedMessage,
    parse_message,
    thread_key_candidates,
)
from tests.support.mail_corpus import DATE_SPAN, REFERENCE_NOW, corpus, realistic_message


@pytest.fixture(autouse=True)
def _no_fallback_to_the_catch_all(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """parse_message logs an ERROR when its catch-all saves it: no input here may need that."""
    with caplog.at_level(logging.WARNING, logger="core.mail.parsing"):
        yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() + str(r.exc_info) for r in errors]


def raw(text: str | bytes, *, lf: bool = False) -> bytes:
    """A message from readable source: "\\n" becomes CRLF (unless `lf`); str is UTF-8."""
    data = text.encode() if isinstance(text, str) else text
    data = data.replace(b"\r\n", b"\n")
    return data if lf else data.replace(b"\n", b"\r\n")


def simple(headers: str, body: str = "Hello.\n") -> bytes:
    return raw(headers.strip("\n") + "\n\n" + body)


def multipart(subtype: str, *parts: str, boundary: str = "b1") -> str:
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"', "", "preamble"]
    for part in parts:
        out += [f"--{boundary}", part.strip("\n")]
    out += [f"--{boundary}--", ""]
    return "\n".join(out)


def db_safe(value: str) -> bool:
    return "\x00" not in value and re.search("[\ud800-\udfff]", value) is None


def strings(parsed: ParsedMessage) -> list[str]:
    """Every string in a result, to check what PostgreSQL will be given."""
    out = [
        *filter(None, (parsed.message_id, parsed.in_reply_to, parsed.subject)),
        *parsed.references,
        *filter(None, (parsed.body_text, parsed.body_html)),
        parsed.snippet,
    ]
    for address in [*filter(None, [parsed.from_]), *parsed.to, *parsed.cc]:
        out += [address.address, *filter(None, [address.name])]
    for attachment in parsed.attachments:
        out += [attachment.content_type, *filter(None, [attachment.filename])]
    return out


# --- a whole message -----------------------------------------------------------------------

REPLY = simple(
    """
Return-Path: <bob@contoso.example>
From: =?utf-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@beispiel.example>
To: "Smith, Bob" <bob@contoso.example>, carol@fabrikam.example
Cc: =?iso-8859-1?Q?Andr=E9?= <andre@exemple.example>
Subject: =?utf-8?B?UmU6IEFuZ2Vib3QgZsO8cg==?=
 =?utf-8?B?IE3DvGxsZXI=?=
Date: Tue, 3 Mar 2026 14:05:09 +0100
Message-ID: <reply.3@beispiel.example>
In-Reply-To: <reply.2@contoso.example>
References: <root.1@beispiel.example>
 <reply.2@contoso.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable
""",
    "Gr=C3=BC=C3=9Fe,\n\nJ=C3=B6rg\n",
)


def test_a_reply_parses_into_every_field() -> None:
    parsed = parse_message(REPLY)
    assert parsed == ParsedMessage(
        message_id="reply.3@beispiel.example",
        in_reply_to="reply.2@contoso.example",
        references=("root.1@beispiel.example", "reply.2@contoso.example"),
        subject="Re: Angebot für Müller",
        from_=Address("Jörg Müller", "joerg@beispiel.example"),
        to=(Address("Smith, Bob", "bob@contoso.example"), Address(None, "carol@fabrikam.example")),
        cc=(Address("André", "andre@exemple.example"),),
        date=datetime(2026, 3, 3, 13, 5, 9, tzinfo=UTC),
        body_text="Grüße,\n\nJörg\n",
        body_html=None,
        snippet="Grüße, Jörg",
        attachments=(),
    )
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(hours=1)
    assert not parsed.has_attachments


def test_thread_key_candidates_are_references_then_in_reply_to_then_own_id() -> None:
    assert thread_key_candidates(parse_message(REPLY)) == (
        "root.1@beispiel.example",
        "reply.2@contoso.example",
        "reply.3@beispiel.example",
    )
    parsed = parse_message(
        simple(
            """
Message-ID: <c@x>
In-Reply-To: <b@x>
References: <a@x> <b@x> <a@x>
"""
        )
    )
    assert thread_key_candidates(parsed) == ("a@x", "b@x", "c@x")
    assert thread_key_candidates(parse_message(simple("Subject: first\n"))) == ()
    assert thread_key_candidates(parse_message(simple("Message-ID: <only@x>\n"))) == ("only@x",)


def test_results_pickle_for_a_process_pool() -> None:
    parsed = parse_message(REPLY)
    assert pickle.loads(pickle.dumps(parsed)) == parsed  # noqa: S301 (our own bytes)


# --- message ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <abc@x.example>", "abc@x.example"),
        ("Message-ID:   <abc@x.example>  ", "abc@x.example"),
        ("message-id: <abc@x.example>", "abc@x.example"),
        ("Message-ID: <abc\n @x.example>", "abc@x.example"),  # folded inside the id
        ("Message-ID: abc@x.example", "abc@x.example"),  # brackets forgotten
        ("Message-ID: <abc@x.example> (added by relay)", "abc@x.example"),
        ("Message-ID: <>", None),
        ("Message-ID:", None),
        ("Message-ID:    ", None),
        ("Subject: no id", None),
        ("Message-ID: <" + "x" * 2000 + "@x.example>", None),  # too long to index
    ],
)
def test_message_id(header: str, expected: str | None) -> None:
    assert parse_message(simple(header)).message_id == expected


def test_first_message_id_header_wins() -> None:
    assert parse_message(simple("Message-ID: <a@x>\nMessage-ID: <b@x>")).message_id == "a@x"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("In-Reply-To: <a@x.example>", "a@x.example"),
        ("In-Reply-To: <a@x.example> <b@x.example>", "a@x.example"),
        ('In-Reply-To: <a@x.example> (Bob\'s message of "Mon, 1 Jan")', "a@x.example"),
        ("In-Reply-To: Your message of Monday <a@x.example>", "a@x.example"),
        ("In-Reply-To: a@x.example", "a@x.example"),
        ("In-Reply-To: your message of Monday", None),
        ("In-Reply-To: ", None),
    ],
)
def test_in_reply_to(header: str, expected: str | None) -> None:
    assert parse_message(simple(header)).in_reply_to == expected


def test_references_in_order_deduplicated_across_headers() -> None:
    parsed = parse_message(
        simple(
            """
References: <a@x> (root)
\t<b@x>,<c@x>
References: <b@x> <d@x>
"""
        )
    )
    assert parsed.references == ("a@x", "b@x", "c@x", "d@x")
    bare = parse_message(simple("References: a@x b@x junk"))
    assert bare.references == ("a@x", "b@x")


def test_long_references_keep_the_root_and_the_latest() -> None:
    ids = [f"<m{i}@x>" for i in range(300)]
    parsed = parse_message(simple("References: " + "\n ".join(ids)))
    assert len(parsed.references) == MAX_REFERENCES
    assert parsed.references[0] == "m0@x"
    assert parsed.references[1:] == tuple(f"m{i}@x" for i in range(300 - MAX_REFERENCES + 1, 300))


# --- subject and RFC 2047 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Subject: plain", "plain"),
        ("Subject:   spaced out  ", "spaced out"),
        ("Subject: folded\n  over lines", "folded  over lines"),
        ("Subject: =?utf-8?B?R3LDvMOfZQ==?=", "Grüße"),
        ("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=", "Grüße aus München"),
        ("Subject: =?iso-8859-1?Q?Caf=E9?=", "Café"),
        ("Subject: =?ISO-8859-1?B?Q2Fm6Q==?=", "Café"),
        ("Subject: =?windows-1252?Q?=80_100?=", "€ 100"),
        # Adjacent encoded words: the whitespace between them goes, folded or not.
        ("Subject: =?utf-8?Q?Gr=C3=BC?= =?utf-8?Q?=C3=9Fe?=", "Grüße"),
        ("Subject: =?utf-8?Q?Gr=C3=BC?=\n =?utf-8?Q?=C3=9Fe?=", "Grüße"),
        ("Subject: =?utf-8?Q?a?==?utf-8?Q?b?=", "ab"),
        ("Subject: =?utf-8?Q?a?= =?iso-8859-1?Q?=E9?=", "aé"),
        # A character split across two words (some encoders do it): joined as bytes first.
        ("Subject: =?utf-8?B?R3LD?= =?utf-8?B?vMOfZQ==?=", "Grüße"),
        # Text around encoded words keeps its spaces.
        ("Subject: Re: =?utf-8?Q?M=C3=BCller?= GmbH", "Re: Müller GmbH"),
        ("Subject: =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=", "テスト"),
        ("Subject: =?utf-8*de?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # RFC 2231 language
        ("Subject: =?utf-8?q?hello world?=", "hello world"),  # unencoded blank inside
        ("Subject: =?utf-8?B?R3LDvMOfZQ?=", "Grüße"),  # padding missing
        ("Subject: =?utf-8?B?R3LDvMOfZQ=?=", "Grüße"),
        ("Subject: =?utf-8?B?R3LDvMOfZ?=", "Grüß"),  # a dangling character
        ("Subject: =?x-unknown?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # unknown: valid UTF-8
        ("Subject: =?x-unknown?Q?Caf=E9?=", "Café"),  # unknown, not UTF-8: windows-1252
        ("Subject: =?utf-8?Q?Caf=E9?=", "Caf\ufffd"),  # invalid for its charset
        ("Subject: =?base64?Q?abc?=", "abc"),  # a codec, but not a text encoding
        ("Subject: =?idna?Q?abc=FF?=", "abcÿ"),  # a text codec that rejects errors="replace"
        ("Subject: =?utf-8?X?abc?=", "=?utf-8?X?abc?="),  # not an encoded word
        ("Subject: 50% =? off", "50% =? off"),
        ("Subject: =?utf-8?Q?", "=?utf-8?Q?"),
        ("Subject: ", None),
        ("Subject: =?utf-8?Q??=", None),
        ("From: a@b", None),
    ],
)
def test_subject(header: str, expected: str | None) -> None:
    assert parse_message(simple(header)).subject == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Subject: Grüße – schön".encode(), "Grüße – schön"),  # noqa: RUF001
        ("Subject: Grüße".encode("latin-1"), "Grüße"),
        ("Subject: “quoted” €".encode("cp1252"), "“quoted” €"),
        (b"Subject: caf\xe9 =?utf-8?Q?cr=C3=A8me?=", "café crème"),
        (b"Subject: bad \x81 byte", "bad \ufffd byte"),  # undefined in windows-1252
    ],
)
def test_raw_8bit_header_bytes(header: bytes, expected: str) -> None:
    assert parse_message(raw(header + b"\n\nbody")).subject == expected


# --- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"a@x.example", (Address(None, "a@x.example"),)),
        (b"<a@x.example>", (Address(None, "a@x.example"),)),
        (b"Ann Lee <a@x.example>", (Address("Ann Lee", "a@x.example"),)),
        (b'"Lee, Ann" <a@x.example>', (Address("Lee, Ann", "a@x.example"),)),
        (b'"Ann \\"AL\\" Lee" <a@x.example>', (Address('Ann "AL" Lee', "a@x.example"),)),
        (b"=?utf-8?B?SsO2cmc=?= <j@x.example>", (Address("Jörg", "j@x.example"),)),
        (
            b"=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <j@x.example>",
            (Address("Jörg Müller", "j@x.example"),),
        ),
        (b"=?iso-8859-1?Q?Andr=E9?= <a@x.example>", (Address("André", "a@x.example"),)),
        # Adjacent words, and a decoded name holding a comma (decoded after splitting).
        (
            b"=?utf-8?Q?M=C3=BCller=2C?= =?utf-8?Q?_J=C3=B6rg?= <j@x.example>, b@x.example",
            (Address("Müller, Jörg", "j@x.example"), Address(None, "b@x.example")),
        ),
        (b'"=?utf-8?Q?J=C3=B6rg?=" <j@x.example>', (Address("Jörg", "j@x.example"),)),
        ("Jörg Müller <j@x.example>".encode(), (Address("Jörg Müller", "j@x.example"),)),
        ("André <a@x.example>".encode("latin-1"), (Address("André", "a@x.example"),)),
        (b"a@x.example (Ann Lee)", (Address("Ann Lee", "a@x.example"),)),
        (
            b"Team: a@x.example, b@x.example;",
            (Address(None, "a@x.example"), Address(None, "b@x.example")),
        ),
        (b"undisclosed-recipients:;", ()),
        (b"", ()),
        (b"<>", ()),
        (b"bob@x.example <bob@x.example>", (Address("bob@x.example", "bob@x.example"),)),
    ],
)
def test_to_addresses(header: bytes, expected: tuple[Address, ...]) -> None:
    assert parse_message(raw(b"To: " + header + b"\n\nbody")).to == expected


def test_from_cc_and_repeated_to() -> None:
    parsed = parse_message(
        simple(
            """
From: Ann <a@x.example>, Bob <b@x.example>
To: c@x.example
To: d@x.example,
 e@x.example
Cc: =?utf-8?Q?=C3=89milie?= <f@x.example>
"""
        )
    )
    assert parsed.from_ == Address("Ann", "a@x.example")  # the first of several authors
    assert [a.address for a in parsed.to] == ["c@x.example", "d@x.example", "e@x.example"]
    assert parsed.cc == (Address("Émilie", "f@x.example"),)


def test_nested_comments_in_an_address_do_not_recurse_forever() -> None:
    parsed = parse_message(simple("From: " + "(" * 5000 + "a@x.example"))
    assert parsed.from_ is None or parsed.from_.address


@pytest.mark.parametrize(
    "field",
    [
        '"Doe, John" <j@x>, Jörg <jm@x>',
        "a@b, c@d,",
        "John  Doe <j@x>",
        '"a \\"b\\" c" <x@y>',
        "Dr. Who <who@tardis.example>",
        "Carol O'Neil <c@x.example>",
        "<a@b>",
        "=?utf-8?Q?J=C3=B6rg?= <j@x>, x@y",
        '"" <a@b>',
    ],
)
def test_fast_address_path_agrees_with_the_full_parser(field: str) -> None:
    assert parsing._simple_addresses([field]) == parsing._full_addresses([field])


@pytest.mark.parametrize(
    "header",
    [
        b"a@x.example, b@x.example,",  # the fast path
        b"a@x.example (Ann), b@x.example,",  # a comment: getaddresses
        b"a@x.example,\r\n b@x.example,",  # folded
        b"Team: a@x.example, b@x.example;,",
        b"a@x.example, b@x.example, ,",
    ],
)
def test_a_trailing_comma_in_an_address_list_loses_no_address(header: bytes) -> None:
    """An empty last item is dropped, on every supported Python: the strict getaddresses
    (CVE-2023-27043's fix, in 3.13 and in 3.11/3.12 patch releases) turns the whole field
    into [("", "")] when it ends with a comma."""
    to = parse_message(raw(b"To: " + header + b"\n\nbody")).to
    assert [a.address for a in to] == ["a@x.example", "b@x.example"]


@pytest.mark.parametrize(
    "field",
    ["undisclosed-recipients:;", "a@b (Comment)", '"unterminated <a@b>', "x, y", "John"],
)
def test_fast_address_path_leaves_the_rest_to_getaddresses(field: str) -> None:
    assert parsing._simple_addresses([field]) is None


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 3 Mar 2026 14:05:09 +0100", datetime(2026, 3, 3, 13, 5, 9, tzinfo=UTC)),
        ("3 Mar 2026 14:05:09 -0800", datetime(2026, 3, 3, 22, 5, 9, tzinfo=UTC)),
        ("Tue, 3 Mar 2026 14:05:09", datetime(2026, 3, 3, 14, 5, 9, tzinfo=UTC)),  # no zone
        ("Tue, 3 Mar 2026 14:05:09 -0000", datetime(2026, 3, 3, 14, 5, 9, tzinfo=UTC)),
        ("Tue, 3 Mar 2026 14:05:09 GMT", datetime(2026, 3, 3, 14, 5, 9, tzinfo=UTC)),
        ("Tue, 3 Mar 2026 14:05:09 EST", datetime(2026, 3, 3, 19, 5, 9, tzinfo=UTC)),
        ("Tue,\n 3 Mar 2026 14:05:09 +0000", datetime(2026, 3, 3, 14, 5, 9, tzinfo=UTC)),
        ("3 Mar 26 14:05 +0000", datetime(2026, 3, 3, 14, 5, tzinfo=UTC)),  # 2-digit year
        ("", None),
        ("yesterday", None),
        ("Tue, 32 Mar 2026 14:05:09 +0000", None),  # no such day
        ("Tue, 3 Foo 2026 14:05:09 +0000", None),
        ("Tue, 3 Mar 2026 25:05:09 +0000", None),
        ("Tue, 3 Mar 2026 14:05:09 +9999", None),  # offset out of range
        ("Tue, 3 Mar 99999 14:05:09 +0000", None),
        ("1234567890", None),
        ("Tue, 3 Mar 2026 14:05:09 +0100 (CET)", datetime(2026, 3, 3, 13, 5, 9, tzinfo=UTC)),
        ("Mar 2026", None),
    ],
)
def test_date(header: str, expected: datetime | None) -> None:
    parsed = parse_message(simple(f"Date: {header}"))
    assert parsed.date == expected
    if parsed.date is not None:
        assert parsed.date.tzinfo is not None


def test_missing_date_and_everything_else() -> None:
    parsed = parse_message(raw("\nJust a body.\n"))
    assert (parsed.message_id, parsed.subject, parsed.from_, parsed.date) == (None,) * 4
    assert parsed.to == parsed.cc == ()
    assert parsed.body_text == "Just a body.\n"


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (b"text/plain; charset=utf-8", "Grüße".encode(), "Grüße"),
        (b'text/plain; charset="ISO-8859-1"', "Grüße".encode("latin-1"), "Grüße"),
        (b"text/plain; charset=windows-1252", "“Preis” 5 €".encode("cp1252"), "“Preis” 5 €"),
        (b"text/plain; charset=iso-2022-jp", "テスト".encode("iso-2022-jp"), "テスト"),
        (b"text/plain; charset=gb2312", "汉字".encode("gb2312"), "汉字"),
        (b"text/plain; charset=ks_c_5601-1987", "한국어".encode("cp949"), "한국어"),
        # Unknown or unusable charsets: UTF-8 when valid, else windows-1252, never an error.
        (b'text/plain; charset="x-unknown"', "Grüße".encode(), "Grüße"),
        (b'text/plain; charset="x-unknown"', "Grüße".encode("latin-1"), "Grüße"),
        (b"text/plain; charset=unknown-8bit", b"caf\xe9", "café"),
        (b"text/plain; charset=base64", b"abc", "abc"),
        (b"text/plain; charset=idna", b"abc\xff", "abcÿ"),
        (b"text/plain; charset=undefined", b"abc", "abc"),
        (b"text/plain; charset=unicode-escape", b"a\\u00e9", "a\\u00e9"),
        (b'text/plain; charset=""', "é".encode(), "é"),
        (b"text/plain; charset=utf\x00-8", "é".encode(), "é"),
        (b"text/plain; charset*=utf-8''utf-8", "é".encode(), "é"),  # RFC 2231 charset
        # Invalid bytes for the declared charset: replacement characters.
        (b"text/plain; charset=utf-8", b"ok \xff\xfe ok", "ok \ufffd\ufffd ok"),
        (b"text/plain; charset=utf-8", b"cut \xe2\x82", "cut \ufffd"),
        # Declared (or defaulted) us-ascii but 8-bit: what the bytes most likely are.
        (b"text/plain; charset=us-ascii", "naïve".encode(), "naïve"),
        (b"text/plain", b"na\xefve", "naïve"),
    ],
)
def test_charsets(content_type: bytes, body: bytes, expected: str) -> None:
    message = b"Subject: x\r\nContent-Type: " + content_type + b"\r\n\r\n" + body
    assert parse_message(message).body_text == expected


@pytest.mark.parametrize(
    ("cte", "payload", "expected"),
    [
        ("base64", "R3LDvMOfZSBhdXMgTcO8bmNoZW4=", "Grüße aus München"),
        ("base64", "R3LDvMOfZSBh\ndXMgTcO8bmNo\nZW4=", "Grüße aus München"),
        ("base64", "R3LDvMOfZSBhdXMgTcO8bmNoZW4", "Grüße aus München"),  # no padding
        ("base64", "R3LDvMOfZSBh!!dXMgTcO8bmNoZW4=", "Grüße aus München"),  # junk characters
        ("base64", "R3LDvMOfZSBhdXMgTcO8bmNoZW4=x", "Grüße aus München"),  # 4n+1 characters
        ("base64", "R3LDvMOfZ", "Grüß"),
        ("base64", "%%%%", None),
        ("BASE64", "R3LDvMOfZQ==", "Grüße"),
        (" base64 ", "R3LDvMOfZQ==", "Grüße"),  # the stdlib only decodes exact tokens
        ('"base64"', "R3LDvMOfZQ==", "Grüße"),
        ("quoted-printable", "Gr=C3=BC=C3=9Fe", "Grüße"),
        ("quoted-printable", "soft=\nbreak", "softbreak"),
        ("quoted-printable", "bad =ZZ and =\n", "bad =ZZ and "),
        ("quoted-printable", "8-bit Grüße =C3=A9", "8-bit Grüße é"),  # raw 8-bit inside QP
        ("Quoted-Printable ", "Gr=C3=BC=C3=9Fe", "Grüße"),
        ("8bit", "Grüße", "Grüße"),
        ("x-unknown", "as is", "as is"),
        ("x-uuencode", "begin 644 f\n#86)C\n`\nend\n", "abc"),
    ],
)
def test_transfer_encodings(cte: str, payload: str, expected: str | None) -> None:
    headers = f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: {cte}"
    assert parse_message(simple(headers, payload)).body_text == expected


def test_html_only_has_no_text_body_and_a_snippet_from_the_visible_text() -> None:
    markup = """<!DOCTYPE html><html><head><title>Newsletter</title>
<style>p { color: red; }</style><script>var x = "<p>not text</p>";</script></head>
<body><!-- a comment --><div>Hello&nbsp;<b>Wor</b>ld &amp; friends,</div><p>3 &lt; 4 and a < b</p>
<p>caf&eacute; &#8364;5</p></body></html>"""
    parsed = parse_message(simple("Content-Type: text/html; charset=utf-8", markup))
    assert parsed.body_text is None
    assert parsed.body_html == markup.replace("\r\n", "\n")
    assert parsed.snippet == "Hello World & friends, 3 < 4 and a < b café €5"


def test_html_snippet_is_bounded_and_survives_unclosed_markup() -> None:
    long = "<p>" + "word " * 10_000 + "</p>"
    parsed = parse_message(simple("Content-Type: text/html", long))
    assert parsed.snippet == ("word " * 100)[:SNIPPET_LENGTH]
    for markup in ("<style>never closed", "<p>text <!-- unclosed", "text <b", "<", "<<<>>>"):
        parse_message(simple("Content-Type: text/html", markup))
    unclosed = parse_message(simple("Content-Type: text/html", "<p>shown<style>x{}"))
    assert unclosed.snippet == "shown"


def test_snippet_collapses_whitespace_and_drops_invisible_characters() -> None:
    body = "\n\n  Hello\u200c\u200b   there,\t\n\nsecond\u00a0line  " + "x" * 500
    parsed = parse_message(simple("Content-Type: text/plain; charset=utf-8", body))
    assert parsed.snippet.startswith("Hello there, second line xxx")
    assert len(parsed.snippet) == SNIPPET_LENGTH
    short = parse_message(simple("Subject: s", "  short\n\n body "))
    assert short.snippet == "short body"


def test_whitespace_only_text_falls_back_to_the_html_for_the_snippet() -> None:
    message = multipart(
        "alternative",
        "Content-Type: text/plain\n\n \n",
        "Content-Type: text/html\n\n<p>From <i>HTML</i></p>",
    )
    parsed = parse_message(raw(message))
    assert parsed.body_text == " "  # the line break before a boundary belongs to the boundary
    assert parsed.snippet == "From HTML"


def test_alternative_inside_mixed_with_attachments() -> None:
    pdf = bytes(range(256)) * 40 + b"tail"
    encoded = base64.encodebytes(pdf).decode()
    message = "Subject: report\n" + multipart(
        "mixed",
        multipart(
            "alternative",
            "Content-Type: text/plain; charset=utf-8\n\nThe text.\n",
            "Content-Type: text/html; charset=utf-8\n\n<p>The <b>HTML</b>.</p>\n",
            boundary="b2",
        ),
        'Content-Type: application/pdf; name="report.pdf"\nContent-Transfer-Encoding: base64\n'
        f'Content-Disposition: attachment; filename="report.pdf"\n\n{encoded}',
        "Content-Type: text/plain\nContent-Disposition: attachment\n\nnotes, no name\n",
        "Content-Type: text/plain\n\nA list footer: neither body nor attachment.\n",
    )
    parsed = parse_message(raw(message))
    # The line break before a boundary belongs to the boundary (RFC 2046 5.1.1).
    assert parsed.body_text == "The text."
    assert parsed.body_html == "<p>The <b>HTML</b>.</p>"
    assert parsed.snippet == "The text."
    assert parsed.attachments == (
        AttachmentInfo("report.pdf", "application/pdf", len(pdf), "2", "base64"),
        AttachmentInfo(None, "text/plain", len("notes, no name"), "3"),
    )
    assert parsed.has_attachments


def test_html_before_text_and_a_named_text_part_is_an_attachment() -> None:
    message = multipart(
        "mixed",
        'Content-Type: text/plain; name="notes.txt"\n\nan inline file\n',
        "Content-Type: text/html\n\n<p>html</p>\n",
        "Content-Type: text/plain\n\nthe text\n",
    )
    parsed = parse_message(raw(message))
    assert (parsed.body_text, parsed.body_html) == ("the text", "<p>html</p>")
    assert [a.filename for a in parsed.attachments] == ["notes.txt"]


def test_inline_images_with_content_id_are_attachments() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(1000)
    encoded = base64.encodebytes(png).decode()
    message = multipart(
        "related",
        '<p><img src="cid:logo@x"></p>'.join(["Content-Type: text/html\n\n", "\n"]),
        f"Content-Type: image/png\nContent-Transfer-Encoding: base64\nContent-ID: <logo@x>\n"
        f'Content-Disposition: inline; filename="logo.png"\n\n{encoded}',
        f"Content-Type: image/gif\nContent-Transfer-Encoding: base64\nContent-ID: <x@x>\n\n"
        f"{encoded}",
    )
    parsed = parse_message(raw(message))
    assert parsed.body_html == '<p><img src="cid:logo@x"></p>'
    assert parsed.attachments == (
        AttachmentInfo("logo.png", "image/png", len(png), "2", "base64", "logo@x", True),
        AttachmentInfo(None, "image/gif", len(png), "3", "base64", "x@x", True),
    )


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ("attachment; filename*=utf-8''Angebot%20M%C3%BCller.pdf", "Angebot Müller.pdf"),
        ("attachment; filename*=UTF-8'de'%E5%A5%91%E7%B4%84.pdf", "契約.pdf"),
        ("attachment; filename*=iso-8859-1''Caf%E9.pdf", "Café.pdf"),
        ("attachment; filename*=x-unknown''Caf%C3%A9.pdf", "Café.pdf"),
        (
            "attachment;\n filename*0*=utf-8''Lange%20Datei;\n filename*1*=%C3%BC.pdf",
            "Lange Dateiü.pdf",
        ),
        ('attachment; filename*0="long "; filename*1="name.txt"', "long name.txt"),
        ('attachment; filename="=?utf-8?B?QW5nZWJvdCBNw7xsbGVyLnBkZg==?="', "Angebot Müller.pdf"),
        ('attachment; filename="=?iso-8859-1?Q?Caf=E9.pdf?="', "Café.pdf"),
        ('attachment; filename="  spaced.pdf  "', "spaced.pdf"),
        ('attachment; filename="a;b.pdf"', "a;b.pdf"),
        ('attachment; filename="C:\\Temp\\a \\"b\\".pdf"', 'C:\\Temp\\a "b".pdf'),
        ('attachment; filename="unclosed.pdf', "unclosed.pdf"),
        ('attachment; filename="', None),
        ('attachment; filename=""', None),
        ("attachment", None),
    ],
)
def test_attachment_file_names(disposition: str, expected: str | None) -> None:
    message = multipart(
        "mixed",
        "Content-Type: text/plain\n\nbody\n",
        f"Content-Type: application/pdf\nContent-Disposition: {disposition}\n\n%PDF\n",
    )
    (attachment,) = parse_message(raw(message)).attachments
    assert attachment.filename == expected


def test_raw_8bit_and_content_type_file_names() -> None:
    part = 'Content-Type: application/pdf; name="Grüße.pdf"\n\n%PDF\n'
    message = raw(multipart("mixed", "Content-Type: text/plain\n\nbody\n", part))
    assert [a.filename for a in parse_message(message).attachments] == ["Grüße.pdf"]
    latin = message.replace("Grüße".encode(), "Grüße".encode("latin-1"))
    assert [a.filename for a in parse_message(latin).attachments] == ["Grüße.pdf"]


def test_attached_messages_count_as_attachments_and_do_not_provide_the_body() -> None:
    inner = raw(
        "From: inner@x.example\nSubject: the forwarded one\nContent-Type: text/plain\n\n"
        + "inner body line\n" * 200
    )
    inner_html = raw(
        "Subject: inner html\n"
        + multipart("alternative", "Content-Type: text/html\n\n<p>inner</p>\n", boundary="in")
    )
    message = raw(
        multipart(
            "mixed",
            "Content-Type: text/plain\n\nSee the attached messages.\n",
            'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="fw.eml"\n\n'
            + inner.decode(),
            "Content-Type: message/rfc822\n\n" + inner_html.decode(),
        )
    )
    parsed = parse_message(message)
    assert parsed.body_text == "See the attached messages."
    assert parsed.body_html is None
    first, second = parsed.attachments
    assert (first.filename, first.content_type) == ("fw.eml", "message/rfc822")
    assert (second.filename, second.content_type) == (None, "message/rfc822")
    assert first.size == pytest.approx(len(inner), rel=0.05)
    assert second.size == pytest.approx(len(inner_html), rel=0.1)


def test_an_attached_message_alone_is_not_the_body() -> None:
    message = simple("Content-Type: message/rfc822", "Subject: inner\n\ninner body\n")
    parsed = parse_message(message)
    assert (parsed.body_text, parsed.snippet) == (None, "")
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]


@pytest.mark.parametrize(
    ("cte", "payload", "size"),
    [
        ("base64", base64.encodebytes(bytes(range(256)) * 100).decode(), 25_600),
        ("base64", base64.b64encode(b"12345").decode(), 5),  # one padding character
        ("base64", base64.b64encode(b"1234").decode(), 4),  # two
        ("base64", base64.b64encode(b"123").decode(), 3),
        ("base64", base64.b64encode(b"12345").decode().rstrip("="), 5),  # padding forgotten
        ("quoted-printable", "a=3Db=\nc", 4),
        ("7bit", "abc\ndef", 8),  # CRLF on the wire
        ("binary", "abc", 3),
    ],
)
def test_attachment_sizes_are_decoded_sizes(cte: str, payload: str, size: int) -> None:
    message = multipart(
        "mixed",
        "Content-Type: text/plain\n\nbody\n",
        f"Content-Type: application/octet-stream\nContent-Transfer-Encoding: {cte}\n\n{payload}",
    )
    (attachment,) = parse_message(raw(message)).attachments
    assert attachment.size == size


def test_a_single_part_attachment_is_not_a_body() -> None:
    message = simple(
        'Content-Type: application/pdf\nContent-Disposition: attachment; filename="a.pdf"\n'
        "Content-Transfer-Encoding: base64",
        "JVBERi0xLjQ=",
    )
    parsed = parse_message(message)
    assert (parsed.body_text, parsed.body_html) == (None, None)
    assert parsed.attachments == (AttachmentInfo("a.pdf", "application/pdf", 8, "1", "base64"),)


def test_multipart_without_boundary_is_read_as_text() -> None:
    parsed = parse_message(simple("Content-Type: multipart/mixed", "just text\n"))
    assert parsed.body_text == "just text\n"
    assert parsed.attachments == ()


@pytest.mark.parametrize(
    "message",
    [
        b"From: a@x.example\r\nSubject: headers only",
        b"From: a@x.example\r\nSubject: headers only\r\n",
        b"From: a@x.example\r\nSubject: empty body\r\n\r\n",
        raw('Content-Type: multipart/mixed; boundary="b1"\n\n--b1--\n'),
        raw(multipart("alternative", "Content-Type: text/plain\n\n")),
    ],
)
def test_no_body_at_all(message: bytes) -> None:
    parsed = parse_message(message)
    assert (parsed.body_text, parsed.body_html, parsed.snippet) == (None, None, "")
    assert parsed.attachments == ()


def test_crlf_and_lf_line_endings_parse_the_same() -> None:
    source = "Subject: endings\nFrom: a@x.example\n" + multipart(
        "alternative",
        "Content-Type: text/plain; charset=utf-8\n\nline one\nline two\n",
        "Content-Type: text/html; charset=utf-8\n\n<p>one</p>\n<p>two</p>\n",
    )
    crlf, lf = parse_message(raw(source)), parse_message(raw(source, lf=True))
    assert crlf == lf
    assert crlf.body_text == "line one\nline two"
    assert crlf.subject == "endings"


# --- hostile structure ---------------------------------------------------------------------


def nested_multipart(depth: int, body_lines: int = 1, *, eol: bytes = b"\r\n") -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    leaf = b"Content-Type: text/plain\n\n" + b"\n".join([b"deep text"] * body_lines)
    message = b"From: a@x.example\nSubject: deep\n" + opening + leaf + closing
    return message.replace(b"\n", eol)


def test_nesting_within_the_depth_cap_finds_the_body() -> None:
    parsed = parse_message(nested_multipart(MAX_DEPTH - 1))
    assert parsed.body_text == "deep text"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 990, 5000])
def test_deep_nesting_neither_raises_nor_recurses(depth: int) -> None:
    parsed = parse_message(nested_multipart(depth))
    assert (parsed.subject, parsed.from_) == ("deep", Address(None, "a@x.example"))
    assert parsed.body_text is None  # below the cap, or not parsed at all


def test_deeply_nested_attached_messages_fall_back_to_headers() -> None:
    # The stdlib parser recurses once per attached message: RecursionError, caught.
    message = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
    message += b"Content-Type: message/rfc822\r\n\r\n" * 3000 + b"Subject: inner\r\n\r\nx"
    parsed = parse_message(message)
    assert parsed.subject == "outer"
    assert parsed.attachments == ()


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"])  # the stdlib takes a lone CR as a line break
def test_many_nested_boundaries_around_many_lines_are_not_slow(eol: bytes) -> None:
    # The stdlib checks each line against each open boundary: 900 x 20,000 would take seconds.
    message = nested_multipart(900, body_lines=20_000, eol=eol).replace(b"boundary", b"BoUnDaRy")
    start = time.perf_counter()
    parsed = parse_message(message)
    assert time.perf_counter() - start < 1.0
    assert parsed.subject == "deep"


@pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"])
def test_parameter_bombs_are_not_slow(eol: bytes) -> None:
    # email.message._parseparam is quadratic in ';' (CPython gh-136063): 45 s unprotected.
    bomb = '; x-junk="' + ";" * 200_000 + '"'
    message = "Subject: bomb\n" + multipart(
        "mixed",
        "Content-Type: text/plain" + bomb + "\n\nbody\n",
        "Content-Type: application/pdf\nContent-Disposition: attachment" + bomb + "\n\nx\n",
    ).replace('boundary="b1"', 'boundary="b1"' + bomb.replace(";", ";\n ", 5000), 1)  # folded
    start = time.perf_counter()
    parsed = parse_message(raw(message, lf=True).replace(b"\n", eol))
    assert time.perf_counter() - start < 1.0
    assert parsed.subject == "bomb"
    assert parsed.body_text == "body"


def test_mixed_rfc2231_sections_do_not_break_the_stdlib_parser() -> None:
    # email.utils.decode_params sorts name*= (no number) with name*0= and raises TypeError.
    mixed = "; name*=utf-8''%C3%BC.pdf; name*0=x; name*1*=%C3%BC"
    message = "Subject: mixed\n" + multipart(
        "mixed",
        "Content-Type: text/plain\n\nbody\n",
        f"Content-Type: application/pdf{mixed}\nContent-Transfer-Encoding: base64\n\nQUJD\xff",
    ).replace('boundary="b1"', 'boundary="b1"' + mixed, 1)
    parsed = parse_message(raw(message.encode("latin-1")))
    assert (parsed.subject, parsed.body_text) == ("mixed", "body")
    assert parsed.attachments == (AttachmentInfo("ü.pdf", "application/pdf", 3, "2", "base64"),)


def test_huge_header_count() -> None:
    filler = "".join(f"X-Filler-{i}: value {i}\n" for i in range(50_000))
    message = simple(filler + "Subject: found\nFrom: a@x.example\nMessage-ID: <m@x>")
    start = time.perf_counter()
    parsed = parse_message(message)
    assert time.perf_counter() - start < 2.0
    assert (parsed.subject, parsed.message_id) == ("found", "m@x")
    assert parsed.body_text == "Hello.\n"


def test_huge_headers_and_address_lists() -> None:
    recipients = ", ".join(f"User {i} <u{i}@x.example>" for i in range(20_000))
    message = simple(f"To: {recipients}\nSubject: " + "=?utf-8?Q?a?= " * 20_000)
    parsed = parse_message(message)
    assert len(parsed.to) == 20_000
    assert parsed.subject == "a" * 20_000


def test_many_parts_are_capped() -> None:
    parts = [f'Content-Type: image/png; name="{i}.png"\n\nx\n' for i in range(3000)]
    message = multipart("mixed", "Content-Type: text/plain\n\nbody\n", *parts)
    parsed = parse_message(raw(message))
    assert parsed.body_text == "body"
    assert len(parsed.attachments) == parsing.MAX_PARTS - 2  # the root and the body part


def test_nul_and_lone_surrogates_never_reach_the_database() -> None:
    message = raw(
        b"Subject: nul\x00here\nFrom: A\x00B <a@x.example>\n"
        b"Content-Type: text/plain; charset=utf-7\n\n+2AA- and \x00 nul\n"
    )
    parsed = parse_message(message)
    assert parsed.subject == "nul\ufffdhere"
    assert parsed.body_text == "\ufffd and \ufffd nul\n"
    assert all(db_safe(s) for s in strings(parsed))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\r\n",
        b"\x00\xff\xfe",
        b"not a header line at all",
        b":\r\n:\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n',  # never closed
        b"Content-Type: message/rfc822\r\n\r\n",
        b'Content-Type: text/plain; charset="\xff\xfe"\r\n\r\n\xff',
        b"Content-Transfer-Encoding: base64\r\n\r\n====",
        b"Content-Type: /\r\nContent-Disposition: ;;;\r\n\r\nx",
        b"Content-Type: text/plain; charset*=x-unknown''%FF\r\n\r\nx",
        b"From: =?utf-8?B?====?= <>\r\nTo: ,,,,\r\nDate: \xff\r\n\r\n",
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n!!!broken\r\nend\r\n",
        b"Content-Type: text/plain; a*0*=; a*999999*=%; a*=''; a*x=1; name*=''%ZZ\r\n\r\nx",
        # 8-bit payloads make get_payload() decode by the charset parameter, which can raise.
        raw(
            multipart(
                "mixed",
                "Content-Type: text/plain; charset*=utf-8''x\n\n\xff",
                "Content-Type: application/pdf; charset*=utf-8''x\n"
                "Content-Transfer-Encoding: base64\n\nQUJD\xff\xfe",
                "Content-Type: image/png; charset=idna\nContent-Transfer-Encoding: base64\n\n\xff",
                "Content-Type: message/rfc822\n\n"
                "Content-Type: text/plain; charset*=utf-8''x\n\n\xff\xfe",
            ).encode("latin-1")
        ),
    ],
)
def test_odd_inputs_do_not_raise(message: bytes) -> None:
    parsed = parse_message(message)
    assert isinstance(parsed, ParsedMessage)
    assert all(db_safe(s) for s in strings(parsed))


def test_an_unexpected_failure_keeps_the_headers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> object:
        raise ValueError("a bug")

    monkeypatch.setattr(parsing, "_walk", broken)
    parsed = parse_message(REPLY)
    assert (parsed.subject, parsed.body_text) == ("Re: Angebot für Müller", None)
    monkeypatch.setattr(parsing, "_with_headers", broken)
    assert parse_message(REPLY) == parsing._EMPTY
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR", "ERROR"]
    caplog.clear()  # expected here; the autouse check is for every other test


def test_empty_input() -> None:
    assert parse_message(b"") == ParsedMessage(
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


def test_bytes_like_input() -> None:
    assert parse_message(bytearray(REPLY)) == parse_message(REPLY)  # type: ignore[arg-type]


def _mutations(rng: random.Random, samples: list[bytes]) -> list[bytes]:
    """Random garbage, and valid messages truncated, spliced, and sprinkled with bad bytes."""
    cases: list[bytes] = []
    for i in range(300):
        kind = i % 5
        sample = rng.choice(samples)
        if kind == 0:
            cases.append(rng.randbytes(rng.randint(0, 4000)))
        elif kind == 1:
            cases.append(sample[: rng.randint(0, len(sample))])
        elif kind == 2:
            data = bytearray(sample)
            for _ in range(rng.randint(1, 50)):
                data[rng.randrange(len(data))] = rng.choice(b'\x00\xff\r\n;"=?<>:()\\ -')
            cases.append(bytes(data))
        elif kind == 3:
            other = rng.choice(samples)
            cases.append(
                sample[: rng.randint(0, len(sample))] + other[rng.randint(0, len(other)) :]
            )
        else:
            lines = sample.split(b"\r\n")
            rng.shuffle(lines)
            cases.append(b"\r\n".join(lines[: rng.randint(0, len(lines))]))
    return cases


def test_garbage_and_mangled_messages_never_raise() -> None:
    # The autouse fixture also checks that no case needed parse_message's catch-all.
    rng = random.Random(20261127)
    samples = [*corpus(40, seed=7), REPLY, nested_multipart(20)]
    for case in _mutations(rng, samples):
        parsed = parse_message(case)
        assert isinstance(parsed, ParsedMessage)
        assert all(db_safe(s) for s in strings(parsed)), case
        assert len(parsed.snippet) <= SNIPPET_LENGTH


_TYPES = ("text/plain", "text/html", "application/pdf", "message/rfc822", "multipart/mixed", "/")
_PARAMETER_NAMES = ("charset", "name", "filename", "name*", "filename*", "filename*0*", "name*1")
_PARAMETER_VALUES = (
    *("utf-8", "x-unknown", "idna", "undefined", "base64", "utf-7", "utf-16", "iso-2022-jp"),
    *('"\xff\xfe"', "utf-8''%C3%BC", "''", "%", '"unterminated', '"a;b"', "=?utf-8?B?w7w=?="),
    *("\xc3\xbc.pdf", "", '"\\""', "utf\x00"),
)
_ENCODINGS = ("base64", "quoted-printable", "8bit", " Base64 ", "x-uuencode", '"base64"', "junk")
_BODIES = ("QUJD", "\xff\xfe", "=C3=BC=", "begin 644 f\n#86)C\n`\nend", "a\x00", "+2AA-", "====")


def _hostile_entity(rng: random.Random, depth: int = 0) -> str:
    """A random MIME entity from the pieces that have broken parsers (ours and the stdlib's)."""
    content_type = rng.choice(_TYPES)
    parameters = "".join(
        f"; {rng.choice(_PARAMETER_NAMES)}={rng.choice(_PARAMETER_VALUES)}"
        for _ in range(rng.randint(0, 3))
    )
    headers = [f"Subject: {rng.choice(_PARAMETER_VALUES)}"] if rng.random() < 0.3 else []
    if content_type.startswith("multipart") and depth < 4:
        headers.append(f"Content-Type: {content_type}; boundary=x{depth}{parameters}")
        parts = [_hostile_entity(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        body = "".join(f"--x{depth}\n{part}\n" for part in parts) + f"--x{depth}--\n"
    elif content_type.startswith("message") and depth < 4:
        headers.append(f"Content-Type: {content_type}{parameters}")
        body = _hostile_entity(rng, depth + 1)
    else:
        headers.append(f"Content-Type: {content_type}{parameters}")
        if rng.random() < 0.7:
            headers.append(f"Content-Transfer-Encoding: {rng.choice(_ENCODINGS)}")
        if rng.random() < 0.5:
            disposition = rng.choice(("attachment", "inline", "\xff"))
            headers.append(f"Content-Disposition: {disposition}{parameters}")
        body = "".join(rng.choice(_BODIES) for _ in range(rng.randint(0, 4)))
    return "\n".join(headers) + "\n\n" + body


def test_random_hostile_mime_structures_never_raise() -> None:
    rng = random.Random(4242)
    for _ in range(300):
        parsed = parse_message(raw(_hostile_entity(rng).encode("latin-1")))
        assert all(db_safe(s) for s in strings(parsed))


# --- the corpus ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> list[bytes]:
    return corpus(400, seed=11)


def test_corpus_is_deterministic_and_ids_are_unique(sample: list[bytes]) -> None:
    assert corpus(400, seed=11) == sample
    assert corpus(400, seed=12) != sample
    parsed = [parse_message(m) for m in sample]
    ids = [p.message_id for p in parsed]
    assert None not in ids and len(set(ids)) == len(ids)


def test_corpus_parses_completely(sample: list[bytes]) -> None:
    seen: set[str] = set()
    replies = with_attachments = with_html = 0
    for message in sample:
        parsed = parse_message(message)
        assert parsed.message_id and parsed.subject and parsed.from_ and parsed.to
        assert parsed.date is not None
        assert REFERENCE_NOW - DATE_SPAN <= parsed.date <= REFERENCE_NOW
        assert parsed.body_text and parsed.snippet
        assert "=?" not in parsed.subject and all("=?" not in (a.name or "") for a in parsed.to)
        if parsed.in_reply_to is not None:
            replies += 1
            assert parsed.in_reply_to in seen  # threads point back into the corpus
            assert set(parsed.references) <= seen
            assert parsed.references[-1] == parsed.in_reply_to
        seen.add(parsed.message_id)
        with_attachments += any(a.size >= 10_000 for a in parsed.attachments)
        with_html += parsed.body_html is not None
    assert 0.25 < replies / len(sample) < 0.45
    assert 0.06 < with_attachments / len(sample) < 0.15
    assert 0.4 < with_html / len(sample) < 0.7


def test_corpus_attachment_sizes_match_the_decoded_payloads(sample: list[bytes]) -> None:
    checked = 0
    for message in sample:
        msg = email.message_from_bytes(message, policy=email.policy.compat32)
        decoded = [
            len(part.get_payload(decode=True))
            for part in msg.walk()
            if isinstance(part, Message) and part.get_filename()
        ]
        assert [a.size for a in parse_message(message).attachments] == decoded
        checked += len(decoded)
    assert checked > 20


def test_corpus_uses_the_charsets_and_encodings_it_promises(sample: list[bytes]) -> None:
    blob = b"\n".join(sample).lower()
    for needle in (
        b"charset=utf-8",
        b"iso-8859-1",
        b"windows-1252",
        b"iso-2022-jp",
        b"quoted-printable",
        b"content-transfer-encoding: base64",
        b"content-transfer-encoding: 8bit",
        b"filename*=utf-8''",
        b"multipart/related",
    ):
        assert needle in blob, needle


def test_realistic_message_extends_the_thread_pool_and_honours_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    pool = ["foreign@elsewhere.example"]
    rng = random.Random(3)
    messages = [realistic_message(rng, i, thread_pool=pool, now=now) for i in range(50)]
    assert len(pool) == 51
    for message in messages:
        parsed = parse_message(message)
        assert parsed.date is not None and now - DATE_SPAN <= parsed.date <= now
        assert parsed.message_id == pool[messages.index(message) + 1]


# --- the fast path (parsing._fast_tree) against the stdlib parser ---------------------------


def _tree(msg: Message) -> list[object]:
    """Everything of a compat32 Message tree the parser sets, in document order."""
    out: list[object] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        out.append(
            (
                part.raw_items() and list(part.raw_items()),
                part.get_default_type(),
                part.get_unixfrom(),
                part.preamble,
                part.epilogue,
                payload if isinstance(payload, str) else len(payload),
            )
        )
        if isinstance(payload, list):
            stack.extend(child for child in reversed(payload) if isinstance(child, Message))
    return out


def _assert_fast_path_agrees(message: bytes) -> bool:
    """Same ParsedMessage on both paths; same tree when the fast path takes the message."""
    assert parsing._parse(message) == parsing._parse(message, fast=False)
    defused = parsing._defuse_parameters(message)
    tree = parsing._fast_tree(defused)
    if tree is None:
        return False
    stdlib = parsing._stdlib_tree(defused)
    assert _tree(tree) == _tree(stdlib)
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_equals_the_stdlib_parser_on_the_corpus(seed: int) -> None:
    messages = corpus(2000, seed)
    taken = sum(_assert_fast_path_agrees(message) for message in messages)
    assert taken >= 0.99 * len(messages)  # the comparison is not vacuous


FRAMING_CASES = [
    simple("Subject: lf only\nFrom: a@b.example", "Hi.\nBye.\n"),
    raw("Subject: lf\nX: y\n\nbody\n", lf=True),
    raw("Subject: mixed\r\nX: y\n\nbody\r\nmore\n", lf=True),
    b"Subject: lone cr\r\n\r\nline\rnext\r\n",
    b"Subject: form feed\r\n\r\nline\x0cnext\r\n",
    b"Subject: vt in header\x0b\r\n\r\nbody\r\n",
    b"Subject: no blank line\r\nFrom: a@b.example\r\n",
    b"Subject: no blank line, no newline",
    b"\r\nbody without headers\r\n",
    b"",
    b"From someone@example Mon Jan  1 00:00:00 2024\r\nSubject: unix from\r\n\r\nbody\r\n",
    b" continuation first\r\nSubject: x\r\n\r\nbody\r\n",
    b"Subject: x\r\n: empty name\r\n\r\nbody\r\n",
    b"Subject: x\r\nnot a header line\r\n\r\nbody\r\n",
    b"Subject: x\r\nX-Folded: one\r\n two\r\n\tthree\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\n\r\n\r\n",
    b"Subject: \xc3\xa4 8-bit\r\n\r\n\xe4 body\r\n",
    raw(
        multipart(
            "mixed", "Content-Type: text/plain\n\nA\n", "Content-Type: text/html\n\n<b>B</b>\n"
        )
    ),
    raw(multipart("mixed", "Content-Type: text/plain\n\nA", boundary="b"), lf=True),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\n\npre\n\n--b  \n\nA\n\n--b\t\n'
        "Content-Type: text/plain\n\nB\n--b-- \n\nepilogue\n\n"
    ),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nA\n--bx\nstill A\n--b--'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nA\n--b--x\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n--b\n\nA\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nA\n--b\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nA\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\nno delimiter\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\nno delimiter at all\n'),
    raw("Content-Type: multipart/mixed\n\n--b\n\nA\n--b--\n"),
    raw('Content-Type: multipart/mixed; boundary=""\n\n--\n\nA\n----\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\n\n--b--\n'),
    raw('Content-Type: multipart/mixed; boundary="b"\n\n--b\nbody, no headers\n--b--\n'),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        'Content-Type: multipart/alternative; boundary="b1"\n\npre\n--b1\n\nA\n--b1\n'
        "Content-Type: text/html\n\n<p>B</p>\n--b1--\ninner epilogue\n\n--b\n\nC\n--b--\n"
    ),
    raw(
        'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
        'Content-Type: multipart/alternative; boundary="b"\n\n--b\n\nA\n--b--\n--b1\n\nC\n--b1--\n'
    ),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        'Content-Type: multipart/alternative; boundary="c"\n\n--c\n\nA\n--b\n\nC\n--b--\n'
    ),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        'Content-Type: multipart/alternative; boundary="c"\n\n--c\n\nA\n--c--\n--b--\n'
    ),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: message/rfc822\n\n'
        "Subject: inner\n\nhi\n--b--\n"
    ),
    raw('Content-Type: multipart/digest; boundary="b"\n\n--b\n\nSubject: inner\n\nhi\n--b--\n'),
    raw("Content-Type: message/rfc822\n\nSubject: inner\n\nhi\n"),
    raw('Content-Type: multipart/mixed; boundary*0="a"; boundary*1="b"\n\n--ab\n\nA\n--ab--\n'),
    raw('Content-Type: multipart/mixed; boundary*="b"; boundary*0="c"\n\n--b\n\nA\n--b--\n'),
    raw(
        'Content-Type: multipart/mixed; boundary="b"\nContent-Type: text/plain\n\n--b\n\nA\n--b--\n'
    ),
    raw('Content-type: Multipart/Mixed; Boundary="B"\n\n--B\n\nA\n--b--\n--B--\n'),
]


@pytest.mark.parametrize("message", FRAMING_CASES)
def test_fast_path_agrees_with_the_stdlib_on_odd_framing(message: bytes) -> None:
    _assert_fast_path_agrees(message)


def test_fast_path_agrees_with_the_stdlib_on_mutated_corpus_messages() -> None:
    rng = random.Random(7)
    insertions = [b"\r\n", b"\n", b"\r", b"--", b"-- ", b" ", b"\t", b"\r\n\r\n", b":", b"\x0c"]
    taken = 0
    for message in corpus(150, 4):
        lines = message.split(b"\r\n")
        delimiters = [i for i, line in enumerate(lines) if line.startswith(b"--")]
        for _ in range(8):
            mutated = list(lines)
            target = rng.choice(delimiters or [0]) + rng.choice((-1, 0, 0, 1))
            target = min(max(target, 0), len(mutated) - 1)
            kind = rng.randrange(4)
            if kind == 0:
                line = mutated[target]
                cut = rng.randint(0, len(line))
                mutated[target] = line[:cut] + rng.choice(insertions) + line[cut:]
            elif kind == 1:
                del mutated[target]
            elif kind == 2:
                mutated.insert(target, mutated[rng.randrange(len(mutated))])
            else:
                mutated[target] = mutated[target][: rng.randint(0, len(mutated[target]))]
            taken += _assert_fast_path_agrees(b"\r\n".join(mutated))
    assert taken > 300
