"""Conversation queries: a page of threads, then their summaries; two statements a page.

The page walks the scope's folders newest first exactly like the inbox page
(core.inbox.repository: a LATERAL top-N per folder on ``ix_messages_folder_date``, merged),
keeping a message only when no later matching message of its thread is in scope (an index
probe on ``ix_messages_thread_date``). So each thread appears once, at its latest matching
message, and the order and keyset are the inbox's: (date, id) of that message.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    Select,
    Uuid,
    any_,
    bindparam,
    exists,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.inbox.cursor import Cursor
from core.inbox.repository import (
    MessageRow,
    PageFilter,
    Scope,
    Shape,
    matches,
    newest_in_folders,
    page_parameters,
)
from core.models import Message

_FOLDERS = bindparam("folders", type_=ARRAY(Uuid))
_ACCOUNTS = bindparam("accounts", type_=ARRAY(Uuid))
# Senders listed per conversation, at most (a mailing-list thread may have hundreds).
MAX_PARTICIPANTS = 10


@functools.cache  # one statement per filter shape, as the inbox page
def _page_statement(shape: Shape) -> Select[Any]:
    later = aliased(Message, name="later")
    later_in_thread = exists().where(
        later.thread_id == Message.thread_id,
        tuple_(later.date, later.id) > tuple_(Message.date, Message.id),
        later.folder_id == any_(_FOLDERS),
        *matches(later, shape),
    )
    return newest_in_folders(shape, ~later_in_thread)


async def latest_per_thread(
    session: AsyncSession,
    scope: Scope,
    page_filter: PageFilter,
    after: Cursor | None,
    limit: int,
) -> list[MessageRow]:
    """Up to ``limit`` conversations after the cursor as their latest matching message in
    scope, newest first."""
    if not scope.folder_ids:
        return []
    result = await session.execute(
        _page_statement(Shape.of(page_filter, after)),
        page_parameters(scope, page_filter, after, limit),
    )
    return [MessageRow(**row._mapping) for row in result]


@dataclass(frozen=True)
class ThreadSummary:
    thread_id: uuid.UUID
    message_count: int
    unread_count: int
    is_flagged: bool
    has_attachments: bool
    account_ids: list[uuid.UUID]
    participants: list[dict[str, Any]]  # {"name", "address"}, first senders first


async def summaries(
    session: AsyncSession, scope: Scope, thread_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ThreadSummary]:
    """Per thread, over its messages in the scope's accounts (every synced folder, each
    Message-ID once, \\Deleted ones left out): counts, flags, accounts, senders."""
    if not thread_ids:
        return {}
    key = func.coalesce(Message.message_id, func.concat("#", Message.id))
    sender = func.jsonb_build_object("name", Message.from_name, "address", Message.from_address)
    statement = (
        select(
            Message.thread_id,
            func.count(key.distinct()).label("messages"),
            func.count(key.distinct()).filter(Message.is_read.is_(False)).label("unread"),
            func.bool_or(Message.is_flagged).label("flagged"),
            func.bool_or(Message.has_attachments).label("attachments"),
            func.array_agg(Message.account_id.distinct()).label("accounts"),
            func.array_agg(aggregate_order_by(sender, Message.date, Message.id))
            .filter(Message.from_address.is_not(None))
            .label("senders"),
        )
        .where(
            Message.thread_id == any_(bindparam("threads", type_=ARRAY(Uuid))),
            Message.account_id == any_(_ACCOUNTS),
            Message.is_deleted.is_(False),
        )
        .group_by(Message.thread_id)
    )
    rows = await session.execute(
        statement, {"threads": list(thread_ids), "accounts": scope.account_ids}
    )
    found: dict[uuid.UUID, ThreadSummary] = {}
    for row in rows:
        found[row.thread_id] = ThreadSummary(
            thread_id=row.thread_id,
            message_count=int(row.messages),
            unread_count=int(row.unread),
            is_flagged=bool(row.flagged),
            has_attachments=bool(row.attachments),
            account_ids=sorted(row.accounts),
            participants=_first_senders(row.senders or []),
        )
    return found


def _first_senders(senders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each address once (case-insensitively), in the order they first wrote."""
    seen: dict[str, dict[str, Any]] = {}
    for sender in senders:
        address = str(sender.get("address") or "")
        if address and address.lower() not in seen:
            seen[address.lower()] = sender
            if len(seen) == MAX_PARTICIPANTS:
                break
    return list(seen.values())
