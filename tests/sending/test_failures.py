"""Temporary and permanent SMTP failures, the crash window, STARTTLS, replies, events."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from core.accounts import credentials
from core.db import session_scope
from core.models import MailAccount, Message, OutgoingMessage, SendStatus, SentCopy
from core.runtime import Runtime
from core.sending.delivery import UNCERTAIN
from core.settings import Settings
from tests.sending.helpers import (
    add_sending_account,
    outgoing_row,
    parse,
    run_worker,
    send,
)
from tests.support.accounts import REMOVE_ACCOUNT
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import api_id
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import (
    SmtpServer,
    running_smtp_server,
    smtp_server_fixture,  # noqa: F401
)
from tests.support.sync import private_mailbox, start_and_sync
from tests.support.websocket import subscribe, websocket
from tests.sync.test_sync_engine import make_message
from workers.send_job import requeue_unfinished_sends

NewUser = Callable[..., Awaitable[TestUser]]


async def _queue_one(
    gql: GraphQLClient, new_user: NewUser, dovecot: ImapServer, smtp: SmtpServer, tmp_path: Path
) -> tuple[TestUser, str]:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp, address="sales@example.com")
    payload = await send(client, subject="Offer")
    assert payload["userErrors"] == []
    outgoing_id: str = payload["outgoing"]["id"]
    return owner, outgoing_id


async def test_a_4xx_is_retried_and_delivered_once(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    smtp_server.reply_to_data("451 4.3.0 Mailbox busy, try again later")
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    await run_worker(make_settings)
    assert smtp_server.data_commands == 2
    [received] = smtp_server.received
    assert parse(received.data)["Subject"] == "Offer"
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.attempts, row.error) == (SendStatus.SENT, 2, None)


async def test_temporary_failures_give_up_after_the_last_attempt(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    smtp_server.reply_to_data(always="421 4.7.0 Too busy")
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    await run_worker(make_settings, send_max_attempts=3)
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.attempts, smtp_server.data_commands) == (SendStatus.FAILED, 3, 3)
    assert row.error is not None and "Gave up after 3 attempts" in row.error
    assert "421" in row.error
    assert smtp_server.received == []


async def test_a_5xx_fails_at_once(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    smtp_server.reply_to_data(always="554 5.7.1 Message rejected as spam")
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    await run_worker(make_settings)
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.attempts, smtp_server.data_commands) == (SendStatus.FAILED, 1, 1)
    assert row.error == "The SMTP server answered 554 5.7.1 Message rejected as spam."
    assert row.sent_copy is SentCopy.PENDING  # nothing was sent, so nothing is filed


async def test_a_wrong_smtp_password_fails_without_showing_it(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    wrong = "changed-Secret-42"
    async with session_scope(runtime.session_factory) as session:
        row = await session.get(OutgoingMessage, uuid.UUID(outgoing_id))
        assert row is not None and row.account_id is not None
        sealed = credentials.seal(runtime.key_ring, row.account_id, credentials.SMTP, wrong)
        await session.execute(
            update(MailAccount)
            .where(MailAccount.id == row.account_id)
            .values(smtp_password_encrypted=sealed)
        )
    await run_worker(make_settings)
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.attempts) == (SendStatus.FAILED, 1)
    assert row.error == "The SMTP server refused the stored login; reconnect the account."
    assert wrong not in (row.error or "") and smtp_server.password not in (row.error or "")
    assert smtp_server.received == []


async def test_an_attempt_cut_short_during_data_is_never_repeated(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """A worker died after DATA began: the server may have the mail, so it is not resent."""
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == uuid.UUID(outgoing_id))
            .values(smtp_data_started_at=datetime.now(UTC), attempts=1)
        )
    await run_worker(make_settings)
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.error) == (SendStatus.FAILED, UNCERTAIN)
    assert smtp_server.data_commands == 0


async def test_removing_the_account_keeps_the_record_and_fails_what_was_queued(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    row = await outgoing_row(runtime, outgoing_id)
    removed = await gql.as_user(owner.token).execute(REMOVE_ACCOUNT, {"id": str(row.account_id)})
    assert removed["removeMailAccount"]["userErrors"] == []
    await run_worker(make_settings)
    row = await outgoing_row(runtime, outgoing_id)
    assert (row.status, row.account_id, row.from_address) == (
        SendStatus.FAILED,
        None,
        "sales@example.com",
    )
    assert row.error == "The account was removed before it was sent."
    assert smtp_server.data_commands == 0


@pytest.fixture
def starttls_smtp(dovecot: ImapServer) -> Iterator[SmtpServer]:
    """STARTTLS with the throwaway certificate of the test Dovecot, whose CA the test
    settings trust (MAILSYNC_TLS_CA_FILE), as a company's own mail CA would be."""
    assert dovecot.ca_file is not None
    tls_dir = Path(dovecot.ca_file).parent
    files = (str(tls_dir / "server-cert.pem"), str(tls_dir / "server-key.pem"))
    with running_smtp_server(tls_files=files) as server:
        yield server


async def test_starttls_delivery(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    starttls_smtp: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, starttls_smtp, tmp_path)
    await run_worker(make_settings)
    row = await outgoing_row(runtime, outgoing_id)
    assert row.status is SendStatus.SENT, row.error
    [received] = starttls_smtp.received
    assert parse(received.data)["Message-ID"] == f"<{row.message_id}>"
    assert starttls_smtp.successful_logins == [starttls_smtp.username] * 2  # add, then send


OUTGOING_CHANGED = "subscription { outgoingMessageChanged { id status sentAt error } }"


async def test_the_owner_hears_the_status_change(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    async with websocket(running_app, http) as ws:
        await subscribe(ws, runtime, owner, "out", OUTGOING_CHANGED)
        client = gql.as_user(owner.token)
        async with private_mailbox("dovecot", dovecot, tmp_path) as box:
            await add_sending_account(client, box, smtp_server)
        outgoing_id = (await send(client))["outgoing"]["id"]
        await run_worker(make_settings)
        event = await ws.receive_json(timeout=10)
    changed = event["payload"]["data"]["outgoingMessageChanged"]
    assert (changed["id"], changed["status"], changed["error"]) == (outgoing_id, "SENT", None)
    assert changed["sentAt"] is not None


async def test_a_reply_refers_to_the_message_and_joins_its_thread(
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
        await box.admin.append("INBOX", make_message("Pricing question", reply_to="first"))
        await start_and_sync(client, runtime, account["id"])
        async with runtime.session_factory() as session:
            parent = await session.scalar(
                select(Message).where(Message.subject == "Pricing question")
            )
        assert parent is not None and parent.message_id is not None

        payload = await send(
            client, subject="Re: Pricing question", inReplyToMessageId=api_id(runtime, parent.id)
        )
        assert payload["userErrors"] == []
        assert payload["outgoing"]["threadId"] == str(parent.thread_id)
        await run_worker(make_settings)
    [received] = smtp_server.received
    message = parse(received.data)
    assert message["In-Reply-To"] == f"<{parent.message_id}>"
    assert message["References"] == "<first@example.com> <Pricing-question@example.com>"


async def test_unfinished_messages_are_queued_again_after_redis_forgot_them(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    _, outgoing_id = await _queue_one(gql, new_user, dovecot, smtp_server, tmp_path)
    await runtime.redis.flushdb()
    # An attempt started (and is waiting out its retry delay): too recent to tell.
    async with session_scope(runtime.session_factory) as session:
        await session.execute(update(OutgoingMessage).values(attempts=1))
    assert await requeue_unfinished_sends({"runtime": runtime}) == 0
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(OutgoingMessage).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert await requeue_unfinished_sends({"runtime": runtime}) == 1
    assert await requeue_unfinished_sends({"runtime": runtime}) == 0  # the job id dedupes
    await run_worker(make_settings)
    assert (await outgoing_row(runtime, outgoing_id)).status is SendStatus.SENT
    assert len(smtp_server.received) == 1
