"""Sync mutations: start, sync now, pause, resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from api.graphql.accounts.types import MailAccount, MailAccountPayload
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.enums import PastSync, Sharing
from api.graphql.errors import IsAuthenticated, UserError
from core import models
from core.errors import ServiceError
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


async def _account_payload(
    info: Info, action: Callable[[SyncService], Awaitable[models.MailAccount]]
) -> MailAccountPayload:
    try:
        async with info.context.unit_of_work() as session:
            account = await action(SyncService(session, info.context.runtime))
    except ServiceError as error:
        return MailAccountPayload(user_errors=[UserError.from_service(error)])
    return MailAccountPayload(account=MailAccount.from_row(account))


@strawberry.type
class SyncMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="READY -> SYNCING; the first sync is queued once this commits.",
    )
    async def start_sync(self, info: Info, input: StartSyncInput) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await _account_payload(
            info,
            lambda sync: sync.start(
                viewer,
                parse_uuid(input.account_id),
                sharing=input.sharing or Sharing.PRIVATE,
                labels=None if input.labels in (None, strawberry.UNSET) else list(input.labels),
                past_sync=input.past_sync or PastSync.ONE_MONTH,
            ),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def sync_now(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await _account_payload(
            info, lambda sync: sync.sync_now(viewer, parse_uuid(account_id))
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def pause_sync(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await _account_payload(info, lambda sync: sync.pause(viewer, parse_uuid(account_id)))

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def resume_sync(self, info: Info, account_id: strawberry.ID) -> MailAccountPayload:
        viewer = viewer_of(info)
        return await _account_payload(
            info, lambda sync: sync.resume(viewer, parse_uuid(account_id))
        )
