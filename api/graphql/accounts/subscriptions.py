from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from core.accounts import repository
from core.events import AccountStatusChanged, Resubscribed


@strawberry.type
class AccountSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "The viewer's accounts, each time one's status changes (and all of them again "
            "after the server lost and regained its event connection)."
        ),
    )
    async def account_status_changed(self, info: Info) -> AsyncGenerator[MailAccount, None]:
        viewer = viewer_of(info)
        async for event in info.context.runtime.events.listen(viewer.user_id):
            if isinstance(event, Resubscribed):
                # Changes may have been missed while Redis was away: send the current state.
                info.context.reset_loaders()
                async with info.context.read_session() as session:
                    rows = await repository.list_owned(session, [viewer.user_id])
                for row in rows:
                    yield MailAccount.from_row(row)
                continue
            if not isinstance(event, AccountStatusChanged):
                continue
            info.context.reset_loaders()  # this event's fields resolve from fresh rows
            async with info.context.read_session() as session:
                changed = await repository.get_readable(session, viewer, event.account_id)
            if changed is not None:  # removed since the event was sent
                yield MailAccount.from_row(changed)
