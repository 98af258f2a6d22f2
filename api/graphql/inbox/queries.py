from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import INVALID_INPUT, IsAuthenticated, top_level_error
from api.graphql.inbox.inputs import InboxFilter, given
from api.graphql.inbox.types import Message, MessageConnection, messages_of
from api.graphql.selection import selects
from core.errors import ServiceError
from core.inbox.service import InboxQuery, inbox_count, inbox_page, readable_message


@strawberry.type
class InboxQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Newest first. `first` is capped at 100; `after` is an endCursor.",
    )
    async def inbox(
        self,
        info: Info,
        filter: InboxFilter | None = strawberry.UNSET,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
    ) -> MessageConnection:
        query = filter.to_domain() if filter else InboxQuery()
        after = given(after)
        total = None
        try:
            # One connection for the page and, when selected, its count.
            async with info.context.read_session() as session:
                page = await inbox_page(
                    session,
                    viewer_of(info),
                    query,
                    50 if first is None else first,
                    after,
                    info.context.runtime.message_ids,
                )
                if selects(info, "totalCount"):
                    total = await inbox_count(session, page, info.context.runtime.counts)
        except ServiceError as error:
            raise top_level_error(INVALID_INPUT, error.message) from None
        info.context.loaders.prime(page.scope.accounts, page.scope.folders)  # for `thread`
        return MessageConnection.from_page(page, info.context.runtime.message_ids, total)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A message the viewer may read (own or a teammate's SHARED account).",
    )
    async def message(self, info: Info, id: strawberry.ID) -> Message | None:
        async with info.context.read_session() as session:
            message_id = info.context.runtime.message_ids.decode(id)
            row = await readable_message(session, viewer_of(info), message_id)
        if row is None:
            return None
        [message] = await messages_of(info, [row])
        return message
