from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.conversations.types import ConversationConnection
from api.graphql.errors import INVALID_INPUT, IsAuthenticated, top_level_error
from api.graphql.inbox.inputs import InboxFilter, given
from core.conversations.service import conversation_page
from core.errors import ServiceError
from core.inbox.service import InboxQuery


@strawberry.type
class ConversationQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The inbox as threads: one row per conversation the viewer may read, "
        "newest first by its latest message that matches the filter (the same filters as "
        "`inbox`). `first` is capped at 100; `after` is an endCursor.",
    )
    async def conversations(
        self,
        info: Info,
        filter: InboxFilter | None = strawberry.UNSET,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
    ) -> ConversationConnection:
        query = filter.to_domain() if filter else InboxQuery()
        try:
            async with info.context.read_session() as session:
                page = await conversation_page(
                    session,
                    viewer_of(info),
                    query,
                    50 if first is None else first,
                    given(after),
                    info.context.runtime.message_ids,
                )
        except ServiceError as error:
            raise top_level_error(INVALID_INPUT, error.message) from None
        info.context.loaders.prime(page.scope.accounts, page.scope.folders)  # for `thread`
        return ConversationConnection.from_page(page, info.context.runtime.message_ids)
