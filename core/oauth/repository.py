"""SQL for OAuth2 grants (one row per OAuth2 account)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.claims import RowClaim
from core.models import OAuthGrant


async def get_grant(session: AsyncSession, account_id: uuid.UUID) -> OAuthGrant | None:
    return await session.get(OAuthGrant, account_id, populate_existing=True)


async def lock_grant(session: AsyncSession, account_id: uuid.UUID) -> OAuthGrant | None:
    return await session.scalar(
        select(OAuthGrant)
        .where(OAuthGrant.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


REFRESH_CLAIM = RowClaim(
    "oauth refresh",
    OAuthGrant.account_id,
    OAuthGrant.refresh_claim,
    OAuthGrant.refresh_claimed_until,
)
