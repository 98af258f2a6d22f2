"""Anyone can email a user: nothing in the headers of their mail reaches the headers of a
reply (CVE-2024-6923: the email package wrote decoded CR/LF of an encoded word raw)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.mail.msgid import is_msg_id
from core.mail.parsing import parse_message
from core.models import Message
from core.runtime import Runtime
from core.sending.compose import HeaderInjectionError, Headers, ValidDraft, build_mime
from core.settings import Settings
from tests.sending.helpers import add_sending_account, parse, run_worker, send, text_body
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import api_id
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.sync import private_mailbox, start_and_sync

# The attack as it was reported: the blank line ends the reply's headers, and what
# follows becomes the body of mail signed as the user; a Reply-To can be added as well.
HOSTILE_ID = "<=?us-ascii?Q?x=0D=0A=0D=0AYour_invoice_is_overdue=0D=0A?=@example.net>"
HOSTILE_REFERENCES = (
    "<root@example.net> <=?us-ascii?Q?y=0D=0AReply-To:_pay@attacker.example?=@example.net>"
)


def hostile_mail(message_id: str = HOSTILE_ID) -> bytes:
    return (
        "From: Stranger <s@attacker.example>\r\n"
        "To: owner@example.com\r\n"
        "Subject: Invoice 1234\r\n"
        "Date: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
        f"Message-ID: {message_id}\r\n"
        f"In-Reply-To: {message_id}\r\n"
        f"References: {HOSTILE_REFERENCES}\r\n"
        "\r\n"
        "Please pay.\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("abc@x.example", True),
        ("20261201.1a2b3c@mail.example.com", True),
        ("CAF=x+y_Z@mail.gmail.com", True),
        ("abc@[192.0.2.1]", True),
        ("=?us-ascii?Q?x=0D=0A?=@example.net", False),  # an encoded word
        ("x\r\nReply-To: a@b@example.net", False),
        ("a b@example.net", False),
        ("a\x00b@example.net", False),
        ("no-at-sign", False),
        ("two@@example.net", False),
        ("dot.@example.net", False),
        ("ünï@example.net", False),
        ("x" * 990 + "@example.net", False),  # beyond RFC 5322's line
        ("", False),
    ],
)
def test_the_msg_id_grammar(text: str, valid: bool) -> None:
    assert is_msg_id(text) is valid


def test_parsing_drops_msg_ids_outside_the_grammar() -> None:
    parsed = parse_message(hostile_mail())
    assert parsed.message_id is None
    assert parsed.in_reply_to is None
    assert parsed.references == ("root@example.net",)


def _draft(subject: str = "Re: Invoice") -> ValidDraft:
    return ValidDraft(
        to=["s@attacker.example"],
        cc=[],
        bcc=[],
        subject=subject,
        body_text="Thanks",
        body_html=None,
    )


def _headers(**overrides: object) -> Headers:
    values: dict[str, object] = {
        "from_address": "owner@example.com",
        "from_name": "Owner",
        "message_id": "abc@example.com",
        "date": datetime(2026, 12, 1, tzinfo=UTC),
        "in_reply_to": None,
        "references": (),
    }
    values.update(overrides)
    return Headers(**values)  # type: ignore[arg-type]


def test_stored_msg_ids_outside_the_grammar_are_not_written() -> None:
    """Rows stored before the grammar was enforced are still strangers' text."""
    hostile = HOSTILE_ID.strip("<>")
    raw = build_mime(
        _draft(), _headers(in_reply_to=hostile, references=("root@example.net", hostile))
    )
    message = parse(raw)
    assert "In-Reply-To" not in message
    assert message["References"] == "<root@example.net>"
    assert b"overdue" not in raw and b"Reply-To" not in raw


@pytest.mark.parametrize(
    "subject",
    [
        "=?us-ascii?Q?Hi=0D=0ABcc:_all@attacker.example?=",  # decoded by the email package
        "=?utf-8?B?SGkNCg0KYm9keQ==?=",
    ],
)
def test_a_header_that_would_decode_to_a_line_break_is_never_written(subject: str) -> None:
    with pytest.raises(HeaderInjectionError):
        build_mime(_draft(subject), _headers())


async def test_a_reply_to_hostile_mail_carries_no_header_or_body_of_the_sender(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account = await add_sending_account(client, box, smtp_server)
        await box.admin.append("INBOX", hostile_mail())
        await start_and_sync(client, runtime, account["id"])
        async with runtime.session_factory() as session:
            parent = await session.scalar(select(Message).where(Message.subject == "Invoice 1234"))
        assert parent is not None
        assert (parent.message_id, list(parent.references)) == (None, ["root@example.net"])

        payload = await send(
            client,
            to=["s@attacker.example"],
            subject="Re: Invoice 1234",
            bodyText="We have paid.",
            inReplyToMessageId=api_id(runtime, parent.id),
        )
        assert payload["userErrors"] == []
        await run_worker(make_settings)
        [sent_copy] = await box.admin.fetch_raw("Sent")

    [received] = smtp_server.received
    for raw in (received.data, sent_copy):
        message = parse(raw)
        assert [k.lower() for k in message] == [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "references",
            "content-type",
            "content-transfer-encoding",
            "mime-version",
        ]
        assert message["References"] == "<root@example.net>"
        assert text_body(message) == "We have paid.\n"
        assert b"overdue" not in raw and b"attacker.example?=" not in raw
