"""Inbox queries. Each is one statement whatever the page or the number of accounts.

The page query walks every folder in scope newest first on ``ix_messages_folder_date``
(a LATERAL top-N per folder) and merges the per-folder heads, so the first page and the
hundredth cost the same and no query sorts a whole mailbox. A message that reached
several folders in scope (same Message-ID) is shown once: a row is skipped when a copy
that sorts before it also matches the filter (an index probe on (account, Message-ID)).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.accounts.repository import readable_by
from core.db import fetch_compiled
from core.identity.viewer import Viewer
from core.inbox import counts
from core.inbox.cursor import Cursor
from core.models import Folder, FolderRole, MailAccount, Message, Plan, Role
from core.models.message import computed_search_vector

# What a list of messages shows: everything but the bodies and the search vector.
LIST_COLUMNS = (
    Message.id,
    Message.account_id,
    Message.folder_id,
    Message.message_id,
    Message.thread_id,
    Message.subject,
    Message.from_name,
    Message.from_address,
    Message.to_addresses,
    Message.cc_addresses,
    Message.date,
    Message.snippet,
    Message.is_read,
    Message.is_flagged,
    Message.has_attachments,
    Message.attachments,
    Message.write_back_error,
    Message.body_downloaded,
)


class _JsonList:
    """A JSON array column of :class:`MessageRow`, which the page statements fetch as its
    text: decoded on first read, so a page that shows no recipients or attachments never
    decodes them (150 small JSON documents a page of 50 were ~7% of its CPU)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_json_{name}"

    def __get__(self, row: object, owner: type | None = None) -> list[dict[str, Any]]:
        value = row.__dict__[self._slot]
        if isinstance(value, str):
            value = row.__dict__[self._slot] = json.loads(value)
        return value  # type: ignore[no-any-return]

    def __set__(self, row: object, value: list[dict[str, Any]] | str) -> None:
        row.__dict__[self._slot] = value


# LIST_COLUMNS with the JSON arrays as their text (see _JsonList).
_AS_TEXT = tuple(
    cast(c, Text).label(c.key) if c.key in ("to_addresses", "cc_addresses", "attachments") else c
    for c in LIST_COLUMNS
)


@dataclass
class MessageRow:
    """A message as lists show it; the bodies only where one message is read."""

    id: int
    account_id: uuid.UUID
    folder_id: uuid.UUID
    message_id: str | None
    thread_id: uuid.UUID
    subject: str | None
    from_name: str | None
    from_address: str | None
    to_addresses: list[dict[str, Any]]
    cc_addresses: list[dict[str, Any]]
    date: datetime
    snippet: str
    is_read: bool
    is_flagged: bool
    has_attachments: bool
    attachments: list[dict[str, Any]]
    write_back_error: str | None = None
    body_downloaded: bool = True


for _name in ("to_addresses", "cc_addresses", "attachments"):  # set by __init__, read lazily
    _column = _JsonList()
    _column.__set_name__(MessageRow, _name)
    setattr(MessageRow, _name, _column)


@dataclass(frozen=True)
class Scope:
    """The folders a query reads, and their accounts (all readable by the viewer)."""

    folder_ids: list[uuid.UUID]
    account_ids: list[uuid.UUID]
    own_account_ids: list[uuid.UUID]  # the viewer's own, among account_ids
    # The rows themselves, so a page's account and folder fields need no more queries.
    accounts: list[MailAccount] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    # Each folder's version as the scope read it (core/inbox/counts.py), as folder_ids.
    versions: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PageFilter:
    unread: bool | None = None
    thread_id: uuid.UUID | None = None
    tsquery: str | None = None  # from core.inbox.search.to_tsquery_text


async def scope_of(
    session: AsyncSession,
    viewer: Viewer,
    role: FolderRole,
    account_ids: Sequence[uuid.UUID] | None,
) -> Scope:
    """The viewer's readable folders with ``role``; ids the viewer may not read match none."""
    values: dict[str, object] = {
        "viewer_id": viewer.user_id,
        "viewer_company_id": viewer.company_id,
        "role": role,
    }
    if account_ids is not None:
        values["account_ids"] = list(account_ids)
    statement = _scope_statement(account_ids is not None)
    rows = (await session.execute(statement, values)).all()
    folders = [folder for folder, _, _ in rows]
    accounts = list({account.id: account for _, account, _ in rows}.values())
    return Scope(
        [f.id for f in folders],
        sorted(a.id for a in accounts),
        sorted(a.id for a in accounts if a.owner_id == viewer.user_id),
        accounts,
        folders,
        [int(version) for _, _, version in rows],
    )


@functools.cache  # built once: building it took as long as running it
def _scope_statement(by_ids: bool) -> Select[Folder, MailAccount, int]:
    # The one visibility rule (readable_by), built with bound parameters for the viewer.
    viewer: Any = Viewer(
        user_id=bindparam("viewer_id", type_=Uuid),  # type: ignore[arg-type]
        company_id=bindparam("viewer_company_id", type_=Uuid),  # type: ignore[arg-type]
        role=Role.REGULAR,  # readable_by reads only the two ids
        plan=Plan.ESSENTIAL,
    )
    query = (
        select(Folder, MailAccount, counts.version_column().scalar_subquery())
        .join(MailAccount, MailAccount.id == Folder.account_id)
        .where(Folder.role == bindparam("role"), readable_by(viewer))
        .order_by(Folder.id)
    )
    if by_ids:
        query = query.where(MailAccount.id == any_(bindparam("account_ids", type_=ARRAY(Uuid))))
    return query


@dataclass(frozen=True)
class Shape:
    """Which filters a page query has: its SQL depends on this only, never on values."""

    unread: bool
    thread: bool
    search: bool
    after: bool

    @classmethod
    def of(cls, page_filter: PageFilter, after: Cursor | None) -> Shape:
        return cls(
            unread=page_filter.unread is not None,
            thread=page_filter.thread_id is not None,
            search=page_filter.tsquery is not None,
            after=after is not None,
        )


def matches(table: type[Message], shape: Shape) -> list[ColumnElement[bool]]:
    # Marked \Deleted on the server and not expunged yet: hidden, as mail clients do.
    conditions: list[ColumnElement[bool]] = [table.is_deleted.is_(False)]
    if shape.unread:
        conditions.append(table.is_read == bindparam("is_read"))
    if shape.thread:
        conditions.append(table.thread_id == bindparam("thread_id", type_=Uuid))
    if shape.search:
        query = func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("tsquery"))
        # A row whose vector is not filled yet (a bulk sync's, for seconds) is matched by
        # computing it: search finds it all the same (core/sync/search_index.py).
        vector = table.search_vector
        conditions.append(
            or_(
                vector.bool_op("@@")(query),
                and_(vector.is_(None), computed_search_vector(table).bool_op("@@")(query)),
            )
        )
    return conditions


_FOLDERS = bindparam("folders", type_=ARRAY(Uuid))
_ACCOUNTS = bindparam("accounts", type_=ARRAY(Uuid))
_OWN = bindparam("own", type_=ARRAY(Uuid))


def page_statement(page_filter: PageFilter, after: Cursor | None, limit: int) -> Select[Any]:
    """The page query for this filter's shape; bind :func:`page_parameters`."""
    return _page_statement(Shape.of(page_filter, after))


@functools.cache  # 16 shapes; building one took longer than running it
def _page_statement(shape: Shape) -> Select[Any]:
    copy = aliased(Message, name="copy")
    # Which copy of a Message-ID is shown: the viewer's own before a teammate's, then the
    # newest. A row is skipped when a matching copy comes before it in that order.
    copy_own, row_own = copy.account_id == any_(_OWN), Message.account_id == any_(_OWN)
    shown_elsewhere = exists().where(
        copy.message_id == Message.message_id,
        copy.account_id == any_(_ACCOUNTS),
        copy.folder_id == any_(_FOLDERS),
        or_(
            copy_own & ~row_own,
            (copy_own == row_own) & (tuple_(copy.date, copy.id) > tuple_(Message.date, Message.id)),
        ),
        *matches(copy, shape),
    )
    return newest_in_folders(shape, ~shown_elsewhere)


def newest_in_folders(shape: Shape, keep: ColumnElement[bool]) -> Select[Any]:
    """The newest ``:limit`` LIST_COLUMNS rows of the ``:folders`` that match the filter
    and ``keep``, after the cursor: a LATERAL top-N per folder, merged."""
    scope = select(func.unnest(_FOLDERS).label("folder_id")).subquery("scope")
    conditions = [Message.folder_id == scope.c.folder_id, *matches(Message, shape), keep]
    if shape.after:
        conditions.append(
            tuple_(Message.date, Message.id)
            < tuple_(
                bindparam("after_date", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=BigInteger),
            )
        )
    limit = bindparam("limit", type_=Integer)
    head = (
        select(*_AS_TEXT)
        .where(and_(*conditions))
        .order_by(Message.date.desc(), Message.id.desc())
        .limit(limit)
        .lateral("head")
    )
    return (
        select(head)
        .select_from(scope)
        .join(head, true())
        .order_by(head.c.date.desc(), head.c.id.desc())
        .limit(limit)
    )


def page_parameters(
    scope: Scope, page_filter: PageFilter, after: Cursor | None = None, limit: int = 0
) -> dict[str, object]:
    """The values for :func:`page_statement` (and :func:`count`, which ignores the rest)."""
    return {
        "folders": scope.folder_ids,
        "accounts": scope.account_ids,
        "own": scope.own_account_ids,
        "is_read": None if page_filter.unread is None else not page_filter.unread,
        "thread_id": page_filter.thread_id,
        "tsquery": page_filter.tsquery,
        "after_date": after.date if after is not None else None,
        "after_id": after.id if after is not None else None,
        "limit": limit,
    }


async def page(
    session: AsyncSession,
    scope: Scope,
    page_filter: PageFilter,
    after: Cursor | None,
    limit: int,
) -> list[MessageRow]:
    """Up to ``limit`` messages after the cursor, newest first."""
    if not scope.folder_ids:
        return []
    rows = await fetch_compiled(
        session,
        page_statement(page_filter, after, limit),
        page_parameters(scope, page_filter, after, limit),
    )
    return [MessageRow(*row) for row in rows]  # LIST_COLUMNS, in order


@functools.cache  # one per filter shape
def _count_statement(shape: Shape) -> Select[Any]:
    key = func.coalesce(Message.message_id, func.concat("#", Message.id))
    return select(func.count(key.distinct())).where(
        Message.folder_id == any_(_FOLDERS), *matches(Message, shape)
    )


async def count(
    session: AsyncSession,
    scope: Scope,
    page_filter: PageFilter,
    cache: counts.CountCache | None = None,
) -> int:
    """How many messages the whole listing has (each Message-ID once): a scan of the
    scope, so only computed when a client asks for totalCount, and kept in ``cache`` until
    one of the scope's folders changes (core/inbox/counts.py)."""
    if not scope.folder_ids:
        return 0
    key = None
    if cache is not None:
        key = counts.CountKey.of(scope.folder_ids, scope.versions, page_filter)
        if (known := cache.get(key)) is not None:
            return known
    statement = _count_statement(Shape.of(page_filter, None))
    rows = await fetch_compiled(session, statement, page_parameters(scope, page_filter))
    total = int(rows[0][0] or 0)
    if cache is not None and key is not None:
        cache.put(key, total)
    return total


def _rows(result: Any) -> list[MessageRow]:
    return [MessageRow(**row._mapping) for row in result]


async def get_readable(session: AsyncSession, viewer: Viewer, message_id: int) -> MessageRow | None:
    """One message the viewer may read."""
    rows = _rows(
        await session.execute(
            select(*LIST_COLUMNS)
            .join(MailAccount, MailAccount.id == Message.account_id)
            .where(Message.id == message_id, readable_by(viewer))
        )
    )
    return rows[0] if rows else None


async def bodies(
    session: AsyncSession, message_ids: Sequence[int]
) -> dict[int, tuple[str | None, str | None]]:
    """(text, html) of each message; the caller has checked that the viewer may read them."""
    rows = await session.execute(
        select(Message.id, Message.body_text, Message.body_html).where(Message.id.in_(message_ids))
    )
    return {r.id: (r.body_text, r.body_html) for r in rows}


# A conversation lists its newest messages up to this many (a mailing-list thread may
# hold thousands; the API's query cost counts on this bound).
MAX_THREAD_MESSAGES = 100


async def threads(
    session: AsyncSession, viewer: Viewer, thread_ids: Sequence[uuid.UUID]
) -> list[MessageRow]:
    """The readable messages of these conversations, oldest first, each Message-ID once;
    per conversation the newest MAX_THREAD_MESSAGES."""
    ranked = (
        select(
            *LIST_COLUMNS,
            func.row_number()
            .over(
                partition_by=(
                    Message.thread_id,
                    func.coalesce(Message.message_id, func.concat("#", Message.id)),
                ),
                # The copy the inbox would show: the viewer's own first, then the newest.
                order_by=(
                    (MailAccount.owner_id == viewer.user_id).desc(),
                    Message.date.desc(),
                    Message.id.desc(),
                ),
            )
            .label("copy"),
        )
        .join(MailAccount, MailAccount.id == Message.account_id)
        .where(
            Message.thread_id.in_(thread_ids),
            Message.is_deleted.is_(False),
            readable_by(viewer),
        )
        .subquery()
    )
    newest = (
        select(
            *(ranked.c[c.key] for c in LIST_COLUMNS),
            func.row_number()
            .over(
                partition_by=ranked.c.thread_id,
                order_by=(ranked.c.date.desc(), ranked.c.id.desc()),
            )
            .label("recency"),
        )
        .where(ranked.c.copy == 1)
        .subquery()
    )
    result = await session.execute(
        select(*(newest.c[c.key] for c in LIST_COLUMNS))
        .where(newest.c.recency <= MAX_THREAD_MESSAGES)
        .order_by(newest.c.date, newest.c.id)
    )
    return _rows(result)


@dataclass(frozen=True)
class Markable:
    id: int
    account_id: uuid.UUID
    folder_id: uuid.UUID
    owner_id: uuid.UUID


async def markable(
    session: AsyncSession, viewer: Viewer, message_ids: Sequence[int]
) -> dict[int, Markable]:
    """The messages among ``message_ids`` the viewer may read, with their owner."""
    rows = await session.execute(
        select(Message.id, Message.account_id, Message.folder_id, MailAccount.owner_id)
        .join(MailAccount, MailAccount.id == Message.account_id)
        .where(Message.id.in_(message_ids), readable_by(viewer))
    )
    return {r.id: Markable(r.id, r.account_id, r.folder_id, r.owner_id) for r in rows}


async def set_flags(
    session: AsyncSession, message_ids: Sequence[int], read: bool | None, flagged: bool | None
) -> None:
    """Change the local flags; each flag that really changes becomes pending, for the sync
    to write back to the server (SET sees the old values, so the test is per row)."""
    changes: dict[str, object] = {}
    if read is not None:
        changes["is_read"] = read
        changes["read_pending"] = Message.read_pending | (Message.is_read != read)
    if flagged is not None:
        changes["is_flagged"] = flagged
        changes["flagged_pending"] = Message.flagged_pending | (Message.is_flagged != flagged)
    if changes:
        await session.execute(
            update(Message)
            .where(Message.id.in_(message_ids))
            .values(**changes)
            .execution_options(synchronize_session=False)
        )


async def rows_by_id(session: AsyncSession, message_ids: Sequence[int]) -> list[MessageRow]:
    return _rows(
        await session.execute(
            select(*LIST_COLUMNS).where(Message.id.in_(message_ids)).order_by(Message.id)
        )
    )
