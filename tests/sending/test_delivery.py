"""Delivery through a real SMTP server (aiosmtpd) and filing in Dovecot's Sent folder."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import event, func, select, text, update

from core.db import session_scope
from core.models import Folder, FolderRole, Message, OutgoingMessage, SendStatus, SentCopy
from core.runtime import Runtime
from core.sending.delivery import OutgoingDelivery
from core.settings import Settings
from tests.sending.helpers import (
    add_sending_account,
    outgoing_row,
    parse,
    run_worker,
    send,
    text_body,
)
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.sync import private_mailbox, start_and_sync, sync_once

NewUser = Callable[..., Awaitable[TestUser]]


async def test_one_delivery_with_the_right_headers_and_one_copy_in_sent(
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
        account = await add_sending_account(
            client, box, smtp_server, address="ann@example.com", display_name="Ann Example"
        )
        await start_and_sync(client, runtime, account["id"])

        payload = await send(
            client,
            to=["Bob Smith <bob@example.org>", "carol@example.org"],
            cc=["dave@example.org"],
            bcc=["hidden@example.org"],
            subject="Quarterly numbers",
            bodyText="Here they are.\nAnn",
        )
        assert payload["userErrors"] == []
        outgoing = payload["outgoing"]
        assert outgoing["status"] == "QUEUED"  # stored, not sent, when the mutation answers
        assert outgoing["fromAddress"] == "ann@example.com"
        assert outgoing["account"] == {"id": account["id"], "emailAddress": "ann@example.com"}
        assert outgoing["automated"] is False

        await run_worker(make_settings)

        [received] = smtp_server.received
        assert received.mail_from == "ann@example.com"
        assert received.rcpt_tos == [
            "bob@example.org",
            "carol@example.org",
            "dave@example.org",
            "hidden@example.org",
        ]
        message = parse(received.data)
        assert message["From"] == "Ann Example <ann@example.com>"
        assert message["To"] == "Bob Smith <bob@example.org>, carol@example.org"
        assert message["Cc"] == "dave@example.org"
        assert message["Bcc"] is None
        assert b"hidden@example.org" not in received.data
        assert message["Subject"] == "Quarterly numbers"
        assert message["Message-ID"] == f"<{outgoing['messageId']}>"
        assert outgoing["messageId"].endswith("@example.com")
        assert message["In-Reply-To"] is None
        assert text_body(message).strip() == "Here they are.\nAnn"

        row = await outgoing_row(runtime, outgoing["id"])
        assert row.status is SendStatus.SENT and row.sent_at is not None
        assert row.attempts == 1 and row.error is None
        assert row.sent_copy is SentCopy.APPENDED

        # The exact bytes sent, once, read, in the Sent folder; the stored copy is then
        # dropped (nothing will send or file it again).
        [copy] = await box.admin.fetch_raw("Sent")
        assert copy.replace(b"\r\n", b"\n") == received.data.replace(b"\r\n", b"\n")
        assert row.mime == b""
        assert list((await box.admin.flags("Sent")).values()) == [{"\\Seen"}]

        # After the next sync the inbox's Sent view has it exactly once.
        await sync_once(runtime, uuid.UUID(account["id"]))
        async with runtime.session_factory() as session:
            stored = list(
                await session.execute(
                    select(Folder.role, Message.thread_id)
                    .join(Folder, Folder.id == Message.folder_id)
                    .where(Message.message_id == outgoing["messageId"])
                )
            )
        assert stored == [(FolderRole.SENT, uuid.UUID(outgoing["threadId"]))]

        # The job running again (arq may) sends nothing and files nothing more.
        await runtime.jobs.enqueue_send(uuid.UUID(outgoing["id"]))
        await run_worker(make_settings)
        assert len(smtp_server.received) == 1
        assert len(await box.admin.fetch_raw("Sent")) == 1


async def test_a_relay_without_login_delivers_without_auth(
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
        await add_sending_account(client, box, smtp_server, address="relay@example.com", relay=True)
        payload = await send(client, subject="Through the relay")
        assert payload["userErrors"] == []
        await run_worker(make_settings)
    row = await outgoing_row(runtime, payload["outgoing"]["id"])
    assert (row.status, row.error) == (SendStatus.SENT, None)
    [received] = smtp_server.received
    assert received.mail_from == "relay@example.com"
    assert parse(received.data)["Subject"] == "Through the relay"
    assert smtp_server.attempts == []


async def test_a_delivery_holds_no_database_connection_while_it_talks_to_smtp(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    """The connection budget (issue 20): a delivery takes one pooled connection for one
    step at a time, and none while the SMTP server has the message. Before, it held its
    advisory lock's connection for the whole delivery (and, earlier still, a second one for
    every step: ten sends at once needed twenty connections of a ten-connection pool)."""
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account = await add_sending_account(client, box, smtp_server, address="ann@example.com")
        await start_and_sync(client, runtime, account["id"])
        payload = await send(client, to=["bob@example.org"], subject="One", bodyText="Hi")
        outgoing_id = uuid.UUID(payload["outgoing"]["id"])
        pool = runtime.engine.sync_engine.pool
        checked_out = [pool.checkedout()]  # type: ignore[attr-defined]
        during_data: list[int] = []

        def checkout(*_args: object) -> None:
            checked_out.append(pool.checkedout())  # type: ignore[attr-defined]

        smtp_server.on_data = lambda: during_data.append(pool.checkedout())  # type: ignore[attr-defined]
        event.listen(pool, "checkout", checkout)
        try:
            assert await OutgoingDelivery(runtime, outgoing_id).run() is None
        finally:
            event.remove(pool, "checkout", checkout)
            smtp_server.on_data = None
    row = await outgoing_row(runtime, str(outgoing_id))
    assert row.sent_copy is SentCopy.APPENDED
    assert (row.delivery_claim, row.delivery_claimed_until) == (None, None)
    assert len(smtp_server.received) == 1
    assert during_data == [checked_out[0]], (during_data, checked_out)
    assert max(checked_out) - checked_out[0] == 1, checked_out


async def _claim_for_someone_else(runtime: Runtime, outgoing_id: uuid.UUID, until: str) -> None:
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == outgoing_id)
            .values(
                delivery_claim=uuid.uuid4(),
                delivery_claimed_until=func.now() + text(f"interval '{until}'"),
            )
        )


async def test_a_message_another_worker_holds_is_looked_at_again_once_its_claim_runs_out(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    """One delivery of a message at a time across workers, even if Redis forgot the job id:
    a delivery that finds another's live claim sends nothing and asks to be retried once
    that claim would have run out (its worker may have died); a claim that ran out (a
    worker SIGKILLed mid-delivery) is taken over."""
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account = await add_sending_account(client, box, smtp_server, address="ann@example.com")
        await start_and_sync(client, runtime, account["id"])
        payload = await send(client, to=["bob@example.org"], subject="Held", bodyText="Hi")
        outgoing_id = uuid.UUID(payload["outgoing"]["id"])

        await _claim_for_someone_else(runtime, outgoing_id, "15 seconds")
        retry_in = await OutgoingDelivery(runtime, outgoing_id).run()
        assert retry_in is not None and 14 <= retry_in <= 17, retry_in
        assert smtp_server.data_commands == 0
        row = await outgoing_row(runtime, str(outgoing_id))
        assert (row.status, row.attempts) == (SendStatus.QUEUED, 0)

        await _claim_for_someone_else(runtime, outgoing_id, "-1 seconds")  # its worker died
        assert await OutgoingDelivery(runtime, outgoing_id).run() is None
    row = await outgoing_row(runtime, str(outgoing_id))
    assert (row.status, row.delivery_claim) == (SendStatus.SENT, None)
    assert len(smtp_server.received) == 1
