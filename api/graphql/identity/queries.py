from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated
from api.graphql.identity.types import User


@strawberry.type
class IdentityQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info) -> User:
        row = await info.context.loaders.user.load(viewer_of(info).user_id)
        if row is None:  # the token's user was deleted during this request
            raise PermissionError("unauthenticated")
        return User.from_row(row)
