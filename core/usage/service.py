from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import repository as account_repository
from core.errors import ErrorCode, ServiceError
from core.identity import repository as identity_repository
from core.identity.viewer import Viewer
from core.models import MailAccount, User
from core.plans import account_limit


@dataclass(frozen=True)
class UserSyncUsage:
    user: User
    account_limit: int
    accounts: list[MailAccount]


async def company_sync_usage(session: AsyncSession, viewer: Viewer) -> list[UserSyncUsage]:
    """Every user of the admin's company with the plan's limit and their accounts.

    Two queries whatever the company's size.
    """
    if not viewer.is_admin:
        raise ServiceError(ErrorCode.FORBIDDEN, "Only company admins can see sync usage.")
    users = await identity_repository.list_company_users(session, viewer.company_id)
    accounts = await account_repository.list_owned(session, [u.id for u in users])
    by_owner: dict[object, list[MailAccount]] = {u.id: [] for u in users}
    for account in accounts:
        by_owner[account.owner_id].append(account)
    limit = account_limit(viewer.plan)
    return [UserSyncUsage(u, limit, by_owner[u.id]) for u in users]
