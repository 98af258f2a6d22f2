from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ClauseElement,
    DateTime,
    LargeBinary,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.db import fetch_compiled
from core.identity.viewer import Viewer
from core.models import ApiToken, Company, Plan, Role, User


async def get_company_by_name(session: AsyncSession, name: str) -> Company | None:
    return await session.scalar(select(Company).where(Company.name == name))


async def create_company(session: AsyncSession, name: str, plan: Plan) -> Company:
    company = Company(id=uuid.uuid4(), name=name, plan=plan)
    session.add(company)
    await session.flush()
    return company


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


async def create_user(
    session: AsyncSession, company: Company, email: str, name: str, role: Role
) -> User:
    user = User(id=uuid.uuid4(), company_id=company.id, email=email, name=name, role=role)
    session.add(user)
    await session.flush()
    return user


async def add_token(
    session: AsyncSession, user_id: uuid.UUID, token_hash: bytes, expires_at: datetime | None
) -> ApiToken:
    token = ApiToken(id=uuid.uuid4(), user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    session.add(token)
    await session.flush()
    return token


@functools.cache  # built once: every API request runs it
def _viewer_statement() -> ClauseElement:
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        select(
            User.id,
            User.company_id,
            User.role,
            Company.plan,
            ApiToken.id,
            ApiToken.last_used_at,
        )
        .join(ApiToken, ApiToken.user_id == User.id)
        .join(Company, Company.id == User.company_id)
        .where(
            ApiToken.token_hash == bindparam("token_hash", type_=LargeBinary),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )


async def find_viewer(
    session: AsyncSession | AsyncConnection, token_hash: bytes, now: datetime
) -> tuple[Viewer, datetime | None] | None:
    """The viewer of an unexpired token, and when the token was last recorded as used."""
    rows = await fetch_compiled(
        session, _viewer_statement(), {"token_hash": token_hash, "now": now}
    )
    if not rows:
        return None
    [row] = rows  # token_hash is unique
    viewer = Viewer(
        user_id=row[0], company_id=row[1], role=Role(row[2]), plan=Plan(row[3]), token_id=row[4]
    )
    return viewer, row[5]


async def viewer_of_user(session: AsyncSession, user_id: uuid.UUID) -> Viewer | None:
    """The user as a viewer now (role and plan as they are), e.g. when a browser comes
    back from an OAuth2 sign-in that the user started (no API token: ``token_id`` None)."""
    row = (
        await session.execute(
            select(User.id, User.company_id, User.role, Company.plan)
            .join(Company, Company.id == User.company_id)
            .where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return Viewer(user_id=row[0], company_id=row[1], role=row[2], plan=row[3])


async def touch_token(
    session: AsyncSession | AsyncConnection,
    token_id: uuid.UUID,
    now: datetime,
    unless_since: datetime,
) -> None:
    """Record a use, unless one was recorded since ``unless_since`` (one write, no race)."""
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < unless_since),
        )
        .values(last_used_at=now)
    )


async def delete_token(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    """Revoke one token; its user, or None when no such token exists."""
    return await session.scalar(
        delete(ApiToken).where(ApiToken.token_hash == token_hash).returning(ApiToken.user_id)
    )


async def delete_tokens_of(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult


async def get_users(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> list[User]:
    return list(await session.scalars(select(User).where(User.id.in_(user_ids))))


async def get_companies(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Company]:
    return list(await session.scalars(select(Company).where(Company.id.in_(ids))))


async def list_company_users(session: AsyncSession, company_id: uuid.UUID) -> list[User]:
    return list(
        await session.scalars(
            select(User).where(User.company_id == company_id).order_by(User.email)
        )
    )


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user row, locked until the transaction ends: serialises a user's account changes."""
    user = await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise LookupError(user_id)
    return user


async def get_company_plan(session: AsyncSession, company_id: uuid.UUID) -> Plan:
    plan = await session.scalar(select(Company.plan).where(Company.id == company_id))
    if plan is None:
        raise LookupError(company_id)
    return plan


async def set_default_account(
    session: AsyncSession, user_id: uuid.UUID, account_id: uuid.UUID | None
) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(default_account_id=account_id)
    )
