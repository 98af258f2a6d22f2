from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from api.graphql.sending.types import OutgoingMessage
from core.events import OutgoingMessageChanged
from core.sending import repository


@strawberry.type
class SendingSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="The viewer's outgoing messages, each time one is sent, fails or is retried.",
    )
    async def outgoing_message_changed(self, info: Info) -> AsyncGenerator[OutgoingMessage, None]:
        viewer = viewer_of(info)
        async for event in info.context.runtime.events.listen(viewer.user_id):
            if not isinstance(event, OutgoingMessageChanged):
                continue
            info.context.reset_loaders()
            async with info.context.read_session() as session:
                row = await repository.get_owned(session, viewer.user_id, event.outgoing_id)
            if row is not None:
                yield OutgoingMessage.from_row(row)
