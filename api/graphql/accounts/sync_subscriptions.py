"""Sync events for the account owner: progress per chunk, one completion per run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from core.accounts import repository
from core.events import Resubscribed
from core.events import SyncCompleted as SyncCompletedEvent
from core.events import SyncProgress as SyncProgressEvent
from core.ids import parse_uuid


@strawberry.type
class SyncCompleted:
    account: MailAccount
    initial: bool = strawberry.field(
        description="True for the first sync after startSync / reconnect."
    )
    new_messages: int
    updated_messages: int
    removed_messages: int
    started_at: datetime
    finished_at: datetime


@strawberry.type
class SyncProgress:
    account: MailAccount
    folder: str
    fetched: int
    total: int


E = TypeVar("E", SyncCompletedEvent, SyncProgressEvent)


async def _current_progress(
    info: Info, wanted: uuid.UUID | None
) -> list[tuple[MailAccount, SyncProgressEvent]]:
    """Where each of the viewer's syncs is now: per selected folder of a SYNCING account,
    the messages stored of the server's count."""
    info.context.reset_loaders()
    async with info.context.read_session() as session:
        rows = await repository.syncing_folders(session, viewer_of(info).user_id, wanted)
    return [
        (
            MailAccount.from_row(account),
            SyncProgressEvent(
                account_id=account.id,
                folder=folder.name,
                fetched=folder.message_count,
                total=max(folder.server_message_count or 0, folder.message_count),
            ),
        )
        for account, folder in rows
    ]


Resend = Callable[[Info, uuid.UUID | None], Awaitable[list[tuple[MailAccount, E]]]]


async def _own_events(
    info: Info, kind: type[E], account_id: strawberry.ID | None, resend: Resend[E] | None = None
) -> AsyncGenerator[tuple[MailAccount, E], None]:
    """Events of ``kind`` about the viewer's own accounts (one of them, or all); after the
    server lost and regained its event connection, what ``resend`` says is current (events
    published while Redis was away are lost)."""
    viewer = viewer_of(info)
    wanted: uuid.UUID | None = parse_uuid(account_id) if account_id else None  # null: all
    async for event in info.context.runtime.events.listen(viewer.user_id):
        if isinstance(event, Resubscribed) and resend is not None:
            for current in await resend(info, wanted):
                yield current
            continue
        if not isinstance(event, kind):
            continue
        if wanted is not None and event.account_id != wanted:
            continue
        info.context.reset_loaders()
        async with info.context.read_session() as session:
            row = await repository.get_readable(session, viewer, event.account_id)
        if row is not None and row.owner_id == viewer.user_id:
            yield MailAccount.from_row(row), event


@strawberry.type
class SyncSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="One event per finished sync run. null: every account of the viewer.",
    )
    async def sync_completed(
        self, info: Info, account_id: strawberry.ID | None = strawberry.UNSET
    ) -> AsyncGenerator[SyncCompleted, None]:
        async for account, event in _own_events(info, SyncCompletedEvent, account_id):
            yield SyncCompleted(
                account=account,
                initial=event.initial,
                new_messages=event.new_messages,
                updated_messages=event.updated_messages,
                removed_messages=event.removed_messages,
                started_at=event.started_at,
                finished_at=event.finished_at,
            )

    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "Per fetched chunk of a sync run (and, after the server lost and regained its "
            "event connection, each syncing folder's stored and server message counts)."
        ),
    )
    async def sync_progress(
        self, info: Info, account_id: strawberry.ID | None = strawberry.UNSET
    ) -> AsyncGenerator[SyncProgress, None]:
        async for account, event in _own_events(
            info, SyncProgressEvent, account_id, _current_progress
        ):
            yield SyncProgress(
                account=account, folder=event.folder, fetched=event.fetched, total=event.total
            )
