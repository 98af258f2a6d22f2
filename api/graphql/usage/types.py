from __future__ import annotations

import strawberry

from api.graphql.accounts.types import MailAccount
from api.graphql.identity.types import User


@strawberry.type(description="One row per company user, for admins.")
class UserSyncUsage:
    user: User
    account_limit: int
    accounts: list[MailAccount]
