from __future__ import annotations

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from core.ids import parse_uuid


@strawberry.type
class AccountQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated], description="The viewer's own accounts."
    )
    async def mail_accounts(self, info: Info) -> list[MailAccount]:
        rows = await info.context.loaders.owned_accounts.load(viewer_of(info).user_id)
        return [MailAccount.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="An own account or a teammate's SHARED one; null for anything else.",
    )
    async def mail_account(self, info: Info, id: strawberry.ID) -> MailAccount | None:
        viewer_of(info)
        row = await info.context.loaders.readable_account.load(parse_uuid(id))
        return MailAccount.from_row(row) if row is not None else None
