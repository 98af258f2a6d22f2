"""The inbox as conversations: one row per thread the viewer may read, newest first.

The same scope and filters as the inbox (core.inbox.service): a conversation is listed
when one of its messages in scope matches, at the place of its latest such message. Its
summary counts the thread's messages in the scope's accounts, every synced folder (a
sent reply counts), each Message-ID once. Threads are per owner (core.models.ThreadKey):
a teammate's shared copy of a conversation is that teammate's conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from core.conversations import repository
from core.conversations.repository import ThreadSummary
from core.identity.viewer import Viewer
from core.ids import MessageIds
from core.inbox.repository import MessageRow, Scope
from core.inbox.service import InboxQuery, listing_of


@dataclass(frozen=True)
class Conversation:
    latest: MessageRow  # the latest message in scope that matches the filter
    summary: ThreadSummary


@dataclass
class ConversationPage:
    conversations: list[Conversation]
    has_next_page: bool
    scope: Scope = field(repr=False)


async def conversation_page(
    session: AsyncSession,
    viewer: Viewer,
    query: InboxQuery,
    first: int,
    after: str | None,
    ids: MessageIds,
) -> ConversationPage:
    """Newest first; ``first`` is capped at MAX_PAGE_SIZE. Three statements."""
    listing = await listing_of(session, viewer, query, first, after, ids)
    limit, scope = listing.limit, listing.scope
    rows = await repository.latest_per_thread(
        session, scope, listing.page_filter, listing.after, limit + 1
    )
    shown = rows[:limit]
    found = await repository.summaries(session, scope, [r.thread_id for r in shown])
    conversations = [Conversation(row, found.get(row.thread_id) or _alone(row)) for row in shown]
    return ConversationPage(conversations, len(rows) > limit, scope)


def _alone(row: MessageRow) -> ThreadSummary:
    """The summary of a thread whose other rows vanished between the two statements."""
    sender = [{"name": row.from_name, "address": row.from_address}] if row.from_address else []
    return ThreadSummary(
        row.thread_id,
        1,
        0 if row.is_read else 1,
        row.is_flagged,
        row.has_attachments,
        [row.account_id],
        sender,
    )
