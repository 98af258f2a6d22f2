from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated, UserError
from api.graphql.inbox.inputs import given
from api.graphql.inbox.types import MarkMessagesPayload, messages_of
from core.errors import ServiceError
from core.inbox.service import FlagChange, mark_messages


@strawberry.type
class InboxMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set read and/or flagged on the owner's messages at once; the account's "
        "next sync (queued now) writes them to the IMAP server.",
    )
    async def mark_messages(
        self,
        info: Info,
        ids: list[strawberry.ID],
        read: bool | None = strawberry.UNSET,
        flagged: bool | None = strawberry.UNSET,
    ) -> MarkMessagesPayload:
        viewer = viewer_of(info)
        try:
            async with info.context.unit_of_work() as session:
                rows = await mark_messages(
                    session,
                    info.context.runtime,
                    viewer,
                    ids,
                    FlagChange(read=given(read), flagged=given(flagged)),
                )
        except ServiceError as error:
            return MarkMessagesPayload(user_errors=[UserError.from_service(error)])
        return MarkMessagesPayload(messages=await messages_of(info, rows))
