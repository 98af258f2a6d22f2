from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.enums import SendStatus
from api.graphql.errors import INVALID_INPUT, IsAuthenticated, top_level_error
from api.graphql.sending.types import OutgoingMessage
from core.errors import ServiceError
from core.sending.service import SendService


@strawberry.type
class SendingQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The viewer's outgoing messages, newest first (first: 1 to 100).",
    )
    async def outgoing_messages(
        self, info: Info, first: int = 50, status: SendStatus | None = None
    ) -> list[OutgoingMessage]:
        viewer = viewer_of(info)
        try:
            async with info.context.read_session() as session:
                rows = await SendService(session, info.context.runtime).list_own(
                    viewer, status, first
                )
        except ServiceError as error:
            raise top_level_error(INVALID_INPUT, error.message) from None
        return [OutgoingMessage.from_row(r) for r in rows]
