"""Seeding synced mail straight into PostgreSQL for inbox tests, and the inbox queries.

The sync engine has its own tests against real IMAP servers; these rows are what it
stores (same tables, same columns), so query tests can cover many cases in milliseconds.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from core.db import session_scope
from core.models import (
    AccountStatus,
    ConnectionSecurity,
    Folder,
    FolderRole,
    MailAccount,
    Message,
    PastSync,
    Sharing,
)
from core.runtime import Runtime
from core.sync import repository as sync_repository
from tests.support.factories import TestUser

_sequence = itertools.count(1)


def api_id(runtime: Runtime, message_id: int) -> str:
    """The id the API shows for the message row ``message_id``."""
    return runtime.message_ids.encode(message_id)


BASE_DATE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

MESSAGE_FIELDS = """
id messageId threadId subject date snippet isRead isFlagged hasAttachments
from { name address } to { name address } cc { name address }
attachments { filename contentType size }
account { id emailAddress } folder { id name role }
"""

INBOX = f"""
query Inbox($filter: InboxFilter, $first: Int, $after: String) {{
  inbox(filter: $filter, first: $first, after: $after) {{
    edges {{ cursor node {{ {MESSAGE_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

INBOX_WITH_COUNT = """
query Inbox($filter: InboxFilter, $first: Int, $after: String) {
  inbox(filter: $filter, first: $first, after: $after) {
    edges { node { id subject } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

MESSAGE = f"""
query Message($id: ID!) {{
  message(id: $id) {{
    {MESSAGE_FIELDS} bodyText bodyHtml
    thread {{ id subject account {{ id }} }}
  }}
}}
"""

MARK = """
mutation Mark($ids: [ID!]!, $read: Boolean, $flagged: Boolean) {
  markMessages(ids: $ids, read: $read, flagged: $flagged) {
    messages { id isRead isFlagged }
    userErrors { code field message }
  }
}
"""


@dataclass(frozen=True)
class SeededAccount:
    id: uuid.UUID
    address: str
    folders: dict[FolderRole, uuid.UUID]


async def seed_account(
    runtime: Runtime,
    owner: TestUser,
    *,
    address: str | None = None,
    sharing: Sharing = Sharing.PRIVATE,
) -> SeededAccount:
    """An ACTIVE account with INBOX, Sent and Archive folders (no server behind it)."""
    address = address or f"seeded{next(_sequence)}@example.com"
    async with session_scope(runtime.session_factory) as session:
        account = MailAccount(
            owner_id=owner.id,
            email_address=address,
            status=AccountStatus.ACTIVE,
            sharing=sharing,
            labels=["INBOX", "Sent"],
            past_sync=PastSync.ALL,
            imap_host="imap.invalid",
            imap_port=993,
            imap_security=ConnectionSecurity.SSL,
            imap_username=address,
            imap_password_encrypted=b"unused: no sync runs for seeded accounts",
        )
        session.add(account)
        await session.flush()
        folders = {}
        for name, role in (("INBOX", FolderRole.INBOX), ("Sent", FolderRole.SENT)):
            folder = Folder(account_id=account.id, name=name, role=role, selected=True)
            session.add(folder)
            await session.flush()
            folders[role] = folder.id
    return SeededAccount(account.id, address, folders)


async def seed_messages(
    runtime: Runtime,
    account: SeededAccount,
    messages: list[dict[str, Any]],
    *,
    role: FolderRole = FolderRole.INBOX,
) -> list[int]:
    """Insert messages (column values; sensible defaults); their ids, in the given order."""
    folder_id = account.folders[role]
    rows = []
    for values in messages:
        n = next(_sequence)
        row: dict[str, Any] = {
            "account_id": account.id,
            "folder_id": folder_id,
            "uid": n,
            "message_id": f"<m{n}@example.com>",
            "thread_id": uuid.uuid4(),
            "subject": f"Message {n}",
            "from_name": "Ann Sender",
            "from_address": "ann@sender.example",
            "to_addresses": [{"name": None, "address": account.address}],
            "cc_addresses": [],
            "date": BASE_DATE + timedelta(minutes=n),
            "snippet": "",
            "body_text": "",
            "is_read": False,
        }
        row.update(values)
        rows.append(row)
    async with session_scope(runtime.session_factory) as session:
        ids = list(await session.scalars(insert(Message).returning(Message.id), rows))
        await sync_repository.refresh_folder_counts(session, folder_id)
    return ids
