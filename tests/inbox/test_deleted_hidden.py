"""A message marked \\Deleted on the server but not expunged yet is hidden from the inbox,
as mail clients do, until it is expunged (then it is gone) or undeleted (then it is back)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.runtime import Runtime
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import INBOX_WITH_COUNT
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, sync_once
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]
FOLDERS = """
query($id: ID!) { mailAccount(id: $id) { messageCount folders { name messageCount unreadCount } } }
"""


async def shown(client: GraphQLClient, account_id: uuid.UUID) -> dict[str, Any]:
    page = (await client.execute(INBOX_WITH_COUNT, {"first": 10}))["inbox"]
    account = (await client.execute(FOLDERS, {"id": str(account_id)}))["mailAccount"]
    [inbox] = [f for f in account["folders"] if f["name"] == "INBOX"]
    return {
        "subjects": sorted(e["node"]["subject"] for e in page["edges"]),
        "total": page["totalCount"],
        "counts": (inbox["messageCount"], inbox["unreadCount"], account["messageCount"]),
    }


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
async def test_a_message_marked_deleted_leaves_the_inbox_until_undeleted(
    kind: str,
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox(kind, dovecot, tmp_path) as box:
        for uid in await box.admin.uids("INBOX"):  # pymap's demo mail
            await box.admin.expunge("INBOX", uid)
        now = datetime.now(UTC)
        await box.admin.append_many(
            "INBOX", [(make_message(s), now) for s in ("keep", "bin", "maybe")]
        )
        account_id = await connect_and_start(client, box, labels=["INBOX"])
        await sync_once(runtime, account_id)
        assert (await shown(client, account_id))["subjects"] == ["bin", "keep", "maybe"]

        uids = await box.admin.uids("INBOX")
        await box.admin.store("INBOX", uids[1], "+FLAGS", "\\Deleted")  # "bin"
        await box.admin.store("INBOX", uids[2], "+FLAGS", "\\Deleted")  # "maybe"
        await sync_once(runtime, account_id)
        assert await shown(client, account_id) == {
            "subjects": ["keep"],
            "total": 1,
            "counts": (1, 1, 1),
        }

        await box.admin.store("INBOX", uids[2], "-FLAGS", "\\Deleted")  # undeleted
        await sync_once(runtime, account_id)
        assert (await shown(client, account_id))["subjects"] == ["keep", "maybe"]
        assert (await shown(client, account_id))["counts"] == (2, 2, 2)
