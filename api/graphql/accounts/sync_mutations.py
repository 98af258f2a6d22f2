"""Sync mutations: start, sync now, pause, resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.accounts.payloads import account_payload
from api.graphql.accounts.types import MailAccountPayload
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.enums import PastSync, Sharing
from api.graphql.errors import IsAuthenticated
from core import models
from core.ids import parse_uuid
from core.sync.service import SyncService


@strawberry.input
class StartSyncInput:
    account_id: strawberry.ID
    sharing: Sharing | None = Sharing.PRIVATE
    labels: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="null: the INBOX and the Sent folder."
    )
    past_sync: PastSync | None = PastSync.ONE_MONTH


def _sync(
    info: Info, action: Callable[[SyncService], Awaitable[models.MailAccount]]
) -> Callable[[AsyncSession], Awaitable[models.MailAccount]]:
    runtime = info.context.runtime
    return lambda session: action(SyncService(session, runtime))


@strawberry.type
class SyncMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="READY -> SYNCING; the first sync is queued once this commits.",
    )
    async def start_sync(self, info: Info, input: StartSyncInput) -> MailAccountPayload:
        viewer = viewer_of(info)
        labels = None if input.labels in (None, strawberry.UNSET) else list(input.labels)
        return await account_payload(
            info,
            _sync(
                info,
                lambda sync: sync.start(
                    viewer,
                    parse_uuid(input.account_id),
                    sharing=input.sharing or Sharing.PRIVATE,
                    labels=labels,
                    past_sync=input.past_sync or PastSync.ONE_MONTH,
                ),
            ),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def sync_now(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await account_payload(
            info, _sync(info, lambda sync: sync.sync_now(viewer, parse_uuid(account_id)))
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def pause_sync(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await account_payload(
            info, _sync(info, lambda sync: sync.pause(viewer, parse_uuid(account_id)))
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def resume_sync(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await account_payload(
            info, _sync(info, lambda sync: sync.resume(viewer, parse_uuid(account_id)))
        )
