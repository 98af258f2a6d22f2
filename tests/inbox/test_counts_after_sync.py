"""After every sync run the inbox, the folder counts and syncUsage agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, sync_once
from tests.sync.test_sync_engine import make_message

VIEW = """
query($id: ID!) {
  all: inbox(first: 0) { totalCount }
  unread: inbox(first: 0, filter: {unread: true}) { totalCount }
  mailAccount(id: $id) {
    messageCount lastSyncedAt folders { name selected messageCount unreadCount }
  }
  syncUsage { user { id } accounts { id messageCount lastSyncedAt labels } }
}
"""


async def _view(client: GraphQLClient, account_id: str) -> dict[str, Any]:
    data = await client.execute(VIEW, {"id": account_id})
    inbox = next(f for f in data["mailAccount"]["folders"] if f["name"] == "INBOX")
    [usage] = [a for row in data["syncUsage"] for a in row["accounts"] if a["id"] == account_id]
    return {
        "listed": data["all"]["totalCount"],
        "unread listed": data["unread"]["totalCount"],
        "folder": (inbox["messageCount"], inbox["unreadCount"]),
        "account": data["mailAccount"]["messageCount"],
        "usage": usage["messageCount"],
        "usage synced": usage["lastSyncedAt"] == data["mailAccount"]["lastSyncedAt"] is not None,
        "usage selected": sorted(usage["labels"]),
    }


async def test_counts_and_usage_follow_each_sync(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many(
            "INBOX", [(make_message(f"count {i}"), now - timedelta(hours=i)) for i in range(6)]
        )
        uids = await box.admin.uids("INBOX")
        await box.admin.store("INBOX", uids[0], "+FLAGS", "\\Seen")
        admin = await new_user(admin=True)
        client = gql.as_user(admin.token)
        account_id = str(await connect_and_start(client, box, labels=["INBOX"]))

        await sync_once(runtime, uuid.UUID(account_id))
        assert await _view(client, account_id) == {
            "listed": 6,
            "unread listed": 5,
            "folder": (6, 5),
            "account": 6,
            "usage": 6,
            "usage synced": True,
            "usage selected": ["INBOX"],
        }

        # On the server: two new, one deleted, one more read.
        await box.admin.append_many("INBOX", [(make_message(f"late {i}"), now) for i in range(2)])
        await box.admin.expunge("INBOX", uids[1])
        await box.admin.store("INBOX", uids[2], "+FLAGS", "\\Seen")
        await sync_once(runtime, uuid.UUID(account_id))
        assert await _view(client, account_id) == {
            "listed": 7,
            "unread listed": 5,
            "folder": (7, 5),
            "account": 7,
            "usage": 7,
            "usage synced": True,
            "usage selected": ["INBOX"],
        }
