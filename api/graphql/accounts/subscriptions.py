from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from core.accounts import repository
from core.events import ACCOUNT_STATUS_CHANGED


@strawberry.type
class AccountSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="The viewer's accounts, each time one's status changes.",
    )
    async def account_status_changed(self, info: Info) -> AsyncGenerator[MailAccount, None]:
        viewer = viewer_of(info)
        async for event in info.context.runtime.events.listen(viewer.user_id):
            if event.get("kind") != ACCOUNT_STATUS_CHANGED:
                continue
            info.context.reset_loaders()  # this event's fields resolve from fresh rows
            async with info.context.read_session() as session:
                row = await repository.get_readable(session, viewer, uuid.UUID(event["account_id"]))
            if row is not None:  # removed since the event was sent
                yield MailAccount.from_row(row)
