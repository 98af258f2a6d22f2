from __future__ import annotations

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated, top_level_error
from api.graphql.identity.types import User
from api.graphql.usage.types import UserSyncUsage
from core.errors import ErrorCode, ServiceError
from core.usage.service import company_sync_usage


@strawberry.type
class UsageQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="ADMIN only (FORBIDDEN otherwise): every company user with their accounts.",
    )
    async def sync_usage(self, info: Info) -> list[UserSyncUsage]:
        try:
            async with info.context.read_session() as session:
                rows = await company_sync_usage(session, viewer_of(info))
        except ServiceError as error:
            if error.code is ErrorCode.FORBIDDEN:
                raise top_level_error("FORBIDDEN", error.message) from None
            raise
        return [
            UserSyncUsage(
                user=User.from_row(row.user),
                account_limit=row.account_limit,
                accounts=[MailAccount.from_row(a) for a in row.accounts],
            )
            for row in rows
        ]
