"""The copy in the Sent folder: once, never at the price of sending again."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from core.accounts import credentials
from core.db import session_scope
from core.models import MailAccount, OutgoingMessage, SendStatus, SentCopy
from core.runtime import Runtime
from core.settings import Settings
from tests.sending.helpers import add_sending_account, outgoing_row, run_worker, send
from tests.support.app import free_port
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.sync import private_mailbox

NewUser = Callable[..., Awaitable[TestUser]]


async def _set_account(runtime: Runtime, outgoing_id: str, **values: object) -> uuid.UUID:
    row = await outgoing_row(runtime, outgoing_id)
    assert row.account_id is not None
    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(MailAccount).where(MailAccount.id == row.account_id).values(**values)
        )
    return row.account_id


async def test_a_failed_append_leaves_the_message_sent_once(
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
        await add_sending_account(client, box, smtp_server)
        outgoing_id = (await send(client))["outgoing"]["id"]
        row = await outgoing_row(runtime, outgoing_id)
        assert row.account_id is not None
        sealed = credentials.seal(
            runtime.key_ring, row.account_id, credentials.IMAP, "no-longer-the-password"
        )
        await _set_account(runtime, outgoing_id, imap_password_encrypted=sealed)

        await run_worker(make_settings)
        row = await outgoing_row(runtime, outgoing_id)
        assert (row.status, row.sent_copy) == (SendStatus.SENT, SentCopy.FAILED)
        await runtime.jobs.enqueue_send(uuid.UUID(outgoing_id))
        await run_worker(make_settings)
        assert len(smtp_server.received) == 1
        assert await box.admin.fetch_raw("Sent") == []


async def test_a_resumed_job_files_the_copy_only_and_not_where_the_provider_does(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """A worker died after SMTP accepted two messages, before their Sent copies."""
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server)
        ours = (await send(client, subject="ours"))["outgoing"]["id"]
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(OutgoingMessage).values(
                    status=SendStatus.SENT, sent_at=datetime.now(UTC), attempts=1
                )
            )
        await run_worker(make_settings)
        assert smtp_server.data_commands == 0  # already sent: only the copy was due
        assert (await outgoing_row(runtime, ours)).sent_copy is SentCopy.APPENDED
        assert len(await box.admin.fetch_raw("Sent")) == 1

        gmail = (await send(client, subject="gmail"))["outgoing"]["id"]
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(OutgoingMessage)
                .where(OutgoingMessage.id == uuid.UUID(gmail))
                .values(status=SendStatus.SENT, sent_at=datetime.now(UTC), attempts=1)
            )
        await _set_account(runtime, gmail, smtp_host="smtp.gmail.com")
        await run_worker(make_settings)
        assert (await outgoing_row(runtime, gmail)).sent_copy is SentCopy.BY_SERVER
        assert len(await box.admin.fetch_raw("Sent")) == 1  # Gmail files its own copy
    assert smtp_server.data_commands == 0


async def test_a_passing_imap_fault_leaves_the_copy_due_and_a_later_run_files_it(
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
        await add_sending_account(client, box, smtp_server)
        outgoing_id = (await send(client))["outgoing"]["id"]
        await _set_account(runtime, outgoing_id, imap_port=free_port())  # nothing listens

        await run_worker(make_settings)
        row = await outgoing_row(runtime, outgoing_id)
        assert (row.status, row.sent_copy) == (SendStatus.SENT, SentCopy.PENDING)
        assert await box.admin.fetch_raw("Sent") == []

        await _set_account(runtime, outgoing_id, imap_port=box.server.port)
        await runtime.jobs.enqueue_send(uuid.UUID(outgoing_id))  # what the requeue cron does
        await run_worker(make_settings)
        row = await outgoing_row(runtime, outgoing_id)
        assert (row.status, row.sent_copy) == (SendStatus.SENT, SentCopy.APPENDED)
        assert len(await box.admin.fetch_raw("Sent")) == 1
        assert len(smtp_server.received) == 1
