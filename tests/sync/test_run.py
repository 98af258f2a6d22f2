"""One account's sync run as a whole: which folders it takes, its schedule afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.models import Folder, MailAccount, Message
from core.runtime import Runtime
from core.sync.run import sync_account
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import EVERY_RUN, connect_and_start, private_mailbox, sync_once
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]


async def subjects_by_folder(runtime: Runtime, account_id: uuid.UUID) -> dict[str, list[str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Folder.name, Message.subject)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.account_id == account_id)
            .order_by(Message.subject)
        )
        found: dict[str, list[str]] = {}
        for name, subject in rows:
            found.setdefault(name, []).append(subject)
    return found


async def next_sync_at(runtime: Runtime, account_id: uuid.UUID) -> datetime | None:
    async with runtime.session_factory() as session:
        return await session.scalar(
            select(MailAccount.next_sync_at).where(MailAccount.id == account_id)
        )


async def test_a_run_of_one_folder_syncs_only_it_and_leaves_the_schedule(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    """What an IDLE watcher asks for: INBOX now, the rest at the account's next full run."""
    owner = await new_user()
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id = await connect_and_start(
            gql.as_user(owner.token), box, labels=["INBOX", "Sent"]
        )
        await sync_once(runtime, account_id)
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message("pushed"), now)])
        await box.admin.append_many("Sent", [(make_message("later"), now)])
        scheduled = await next_sync_at(runtime, account_id)

        result = await sync_account(runtime, account_id, EVERY_RUN, folders=["INBOX"])
        assert result is not None and result.counts.new == 1 and not result.initial
        assert await subjects_by_folder(runtime, account_id) == {"INBOX": ["pushed"]}
        assert await next_sync_at(runtime, account_id) == scheduled

        await sync_once(runtime, account_id)
        assert await subjects_by_folder(runtime, account_id) == {
            "INBOX": ["pushed"],
            "Sent": ["later"],
        }
