"""Helpers for the sending tests: accounts that can send, the mutations, a burst worker."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from core.models import OutgoingMessage
from core.runtime import Runtime
from core.settings import Settings
from tests.support import factories
from tests.support.graphql import GraphQLClient
from tests.support.smtp_server import SmtpServer
from tests.support.sync import Mailbox, burst_worker

OUTGOING_FIELDS = """
id fromAddress status error createdAt sentAt to cc bcc subject automated messageId
threadId attempts account { id emailAddress }
"""

SEND = f"""
mutation Send($input: SendEmailInput!) {{
  sendEmail(input: $input) {{
    outgoing {{ {OUTGOING_FIELDS} }}
    userErrors {{ code field message }}
  }}
}}
"""

SEND_AUTOMATED = f"""
mutation SendAutomated($input: SendAutomatedEmailInput!) {{
  sendAutomatedEmail(input: $input) {{
    outgoing {{ {OUTGOING_FIELDS} }}
    userErrors {{ code field message }}
  }}
}}
"""

OUTGOING_MESSAGES = f"""
query Outgoing($first: Int!, $status: SendStatus) {{
  outgoingMessages(first: $first, status: $status) {{ {OUTGOING_FIELDS} }}
}}
"""

ADD = """
mutation Add($input: AddMailAccountInput!) {
  addMailAccount(input: $input) { account { id emailAddress } userErrors { code message } }
}
"""


async def add_sending_account(
    client: GraphQLClient,
    box: Mailbox,
    smtp: SmtpServer | None,
    *,
    address: str | None = None,
    display_name: str | None = None,
    relay: bool = False,
    own_mailbox: bool = False,
) -> dict[str, Any]:
    """An account on ``box`` (IMAP) that sends through ``smtp`` (``relay``: without a
    login); the API's answer. ``own_mailbox``: on a new mailbox of box's Dovecot instead,
    for a second account of the same user (the same login twice is DUPLICATE_ACCOUNT)."""
    imap = box.imap_input()
    if own_mailbox:
        imap |= factories.own_mailbox(box.server)
    account_input: dict[str, Any] = {
        "emailAddress": address or f"sender-{uuid.uuid4().hex[:8]}@example.com",
        "imap": imap,
    }
    if smtp is not None:
        account_input["smtp"] = smtp.smtp_input()
        if relay:
            del account_input["smtp"]["username"], account_input["smtp"]["password"]
    if display_name is not None:
        account_input["displayName"] = display_name
    data = await client.execute(ADD, {"input": account_input})
    assert data["addMailAccount"]["userErrors"] == [], data
    account: dict[str, Any] = data["addMailAccount"]["account"]
    return account


async def send(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    """The sendEmail payload for an input with sensible defaults."""
    payload: dict[str, Any] = {"to": ["ann@example.org"], "subject": "Hello", "bodyText": "Hi!"}
    payload.update(fields)
    data = await client.execute(SEND, {"input": payload})
    result: dict[str, Any] = data["sendEmail"]
    return result


async def send_automated(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"to": ["bob@example.org"], "subject": "Reminder", "bodyText": "x"}
    payload.update(fields)
    data = await client.execute(SEND_AUTOMATED, {"input": payload})
    result: dict[str, Any] = data["sendAutomatedEmail"]
    return result


def worker_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    values: dict[str, Any] = {"send_retry_seconds": 0.05, "send_max_attempts": 3}
    values.update(overrides)
    return make_settings(**values)


async def run_worker(make_settings: Callable[..., Settings], **overrides: Any) -> None:
    """An arq worker in burst mode, with its own connections, until its queue is empty."""
    await burst_worker(worker_settings(make_settings, **overrides))


async def outgoing_rows(runtime: Runtime) -> list[OutgoingMessage]:
    async with runtime.session_factory() as session:
        return list(
            await session.scalars(select(OutgoingMessage).order_by(OutgoingMessage.created_at))
        )


async def outgoing_row(runtime: Runtime, outgoing_id: str) -> OutgoingMessage:
    async with runtime.session_factory() as session:
        row = await session.get(OutgoingMessage, uuid.UUID(outgoing_id))
    assert row is not None
    return row


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")
