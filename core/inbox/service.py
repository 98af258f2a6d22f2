"""Reading the unified inbox and marking messages, for one viewer.

Visibility is one rule, applied in SQL on every read: the viewer's own accounts plus the
SHARED accounts of users in the viewer's company. Writes (marking) are the owner's only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ErrorCode, ServiceError
from core.identity.viewer import Viewer
from core.ids import MessageIds
from core.inbox import repository
from core.inbox.counts import CountCache
from core.inbox.cursor import Cursor, decode_cursor
from core.inbox.repository import MessageRow, PageFilter, Scope
from core.inbox.search import to_tsquery_text
from core.models import FolderRole
from core.runtime import Runtime
from core.sync import repository as sync_repository
from core.sync.requests import request_syncs

MAX_PAGE_SIZE = 100
MAX_MARK = 500
MAX_SEARCH_LENGTH = 500
MAX_ACCOUNT_IDS = 100


@dataclass(frozen=True)
class InboxQuery:
    account_ids: list[uuid.UUID] | None = None  # None: every account the viewer may read
    folder_role: FolderRole = FolderRole.INBOX
    unread: bool | None = None
    search: str | None = None
    thread_id: uuid.UUID | None = None


@dataclass
class InboxPage:
    rows: list[MessageRow]
    has_next_page: bool
    scope: Scope = field(repr=False)
    page_filter: PageFilter = field(repr=False)


def page_filter_of(query: InboxQuery) -> PageFilter:
    if query.account_ids is not None and len(query.account_ids) > MAX_ACCOUNT_IDS:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"Filter by at most {MAX_ACCOUNT_IDS} accounts.",
            "filter.accountIds",
        )
    tsquery = None
    if query.search is not None:
        if len(query.search) > MAX_SEARCH_LENGTH:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                f"A search has at most {MAX_SEARCH_LENGTH} characters.",
                "filter.search",
            )
        tsquery = to_tsquery_text(query.search)
    return PageFilter(unread=query.unread, thread_id=query.thread_id, tsquery=tsquery)


async def inbox_page(
    session: AsyncSession,
    viewer: Viewer,
    query: InboxQuery,
    first: int,
    after: str | None,
    ids: MessageIds,
) -> InboxPage:
    """Newest first; ``first`` is capped at MAX_PAGE_SIZE. Two statements."""
    listing = await listing_of(session, viewer, query, first, after, ids)
    rows = await repository.page(
        session, listing.scope, listing.page_filter, listing.after, listing.limit + 1
    )
    return InboxPage(rows[: listing.limit], len(rows) > listing.limit, *listing.scope_filter)


@dataclass(frozen=True)
class Listing:
    """A checked listing request: what to read, from where, how much."""

    scope: Scope
    page_filter: PageFilter
    after: Cursor | None
    limit: int

    @property
    def scope_filter(self) -> tuple[Scope, PageFilter]:
        return self.scope, self.page_filter


async def listing_of(
    session: AsyncSession,
    viewer: Viewer,
    query: InboxQuery,
    first: int,
    after: str | None,
    ids: MessageIds,
) -> Listing:
    """The inputs checked (INVALID_INPUT), and the scope read: one statement."""
    if first < 0:
        raise ServiceError(ErrorCode.INVALID_INPUT, "`first` cannot be negative.", "first")
    cursor: Cursor | None = decode_cursor(after, ids) if after is not None else None
    page_filter = page_filter_of(query)
    scope = await repository.scope_of(session, viewer, query.folder_role, query.account_ids)
    return Listing(scope, page_filter, cursor, min(first, MAX_PAGE_SIZE))


async def inbox_count(
    session: AsyncSession, page: InboxPage, cache: CountCache | None = None
) -> int:
    """The listing's count; from ``cache`` while none of its folders has changed."""
    return await repository.count(session, page.scope, page.page_filter, cache)


async def readable_message(
    session: AsyncSession, viewer: Viewer, message_id: int
) -> MessageRow | None:
    return await repository.get_readable(session, viewer, message_id)


@dataclass(frozen=True)
class FlagChange:
    read: bool | None = None
    flagged: bool | None = None


async def mark_messages(
    session: AsyncSession,
    runtime: Runtime,
    viewer: Viewer,
    api_ids: Sequence[str],
    change: FlagChange,
) -> list[MessageRow]:
    """Set read/flagged on the owner's messages now; the account's next sync run (queued
    here) writes them to the server with UID STORE. All or nothing."""
    if change.read is None and change.flagged is None:
        raise ServiceError(ErrorCode.INVALID_INPUT, "Give `read`, `flagged` or both.", "read")
    if not api_ids:
        raise ServiceError(ErrorCode.INVALID_INPUT, "Give at least one message id.", "ids")
    if len(api_ids) > MAX_MARK:  # before any id is looked at
        raise ServiceError(
            ErrorCode.INVALID_INPUT, f"Mark at most {MAX_MARK} messages at a time.", "ids"
        )
    message_ids = [runtime.message_ids.decode(i) for i in api_ids]
    found = await repository.markable(session, viewer, message_ids)
    for position, message_id in enumerate(message_ids):
        target = found.get(message_id)
        if target is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "No such message.", f"ids[{position}]")
        if target.owner_id != viewer.user_id:
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                "Only the owner of a shared account can change its messages.",
                f"ids[{position}]",
            )
    ids = sorted(found)
    await repository.set_flags(session, ids, change.read, change.flagged)
    for folder_id in sorted({m.folder_id for m in found.values()}):
        await sync_repository.refresh_folder_counts(session, folder_id)
    await request_syncs(session, runtime.jobs, sorted({m.account_id for m in found.values()}))
    by_id = {row.id: row for row in await repository.rows_by_id(session, ids)}
    return [by_id[i] for i in dict.fromkeys(message_ids)]
