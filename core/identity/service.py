"""Creating companies and users (the CLI's job) and authenticating API tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.db import autocommit
from core.errors import ErrorCode, ServiceError
from core.identity import repository
from core.identity.tokens import hash_token, new_token
from core.identity.viewer import Viewer
from core.models import Company, Plan, Role, User


@dataclass(frozen=True)
class CreatedUser:
    company: Company
    user: User
    token: str
    company_created: bool


async def create_user(
    session: AsyncSession,
    *,
    company_name: str,
    email: str,
    name: str | None = None,
    plan: Plan | None = None,
    admin: bool = False,
    token_expires_in: timedelta | None = None,
) -> CreatedUser:
    """Create the company if needed (plan default ADVANCED), the user, and an API token.

    ``plan`` for an existing company must agree with it: use ``set_plan`` to change it.
    """
    company_name = company_name.strip()
    if not company_name:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The company name is empty.", "company")
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ServiceError(ErrorCode.INVALID_INPUT, str(exc), "email") from None
    if await repository.get_user_by_email(session, email) is not None:
        raise ServiceError(ErrorCode.INVALID_INPUT, f"A user {email} already exists.", "email")
    company = await repository.get_company_by_name(session, company_name)
    created = company is None
    if company is None:
        company = await repository.create_company(session, company_name, plan or Plan.ADVANCED)
    elif plan is not None and plan is not company.plan:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"{company_name} is on {company.plan.value}; change it with set-plan.",
            "plan",
        )
    role = Role.ADMIN if admin else Role.REGULAR
    user = await repository.create_user(session, company, email, name or email.split("@")[0], role)
    token = await issue_token(session, user, token_expires_in)
    return CreatedUser(company, user, token, created)


# A token's last use is recorded at most this often: a write per request would cost more
# than the request.
TOUCH_EVERY = timedelta(minutes=5)
MAX_TOKEN_LENGTH = 200


async def issue_token(
    session: AsyncSession, user: User, expires_in: timedelta | None = None
) -> str:
    token = new_token()
    expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
    await repository.add_token(session, user.id, hash_token(token), expires_at)
    return token


async def authenticate(session: AsyncSession, token: str) -> Viewer | None:
    """The viewer of a known, unexpired token; None for anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    found = await repository.find_viewer(session, hash_token(token), datetime.now(UTC))
    return found[0] if found is not None else None


async def authenticate_request(engine: AsyncEngine, token: str) -> Viewer | None:
    """As :func:`authenticate`, recording the token's use (throttled to TOUCH_EVERY).

    Every API request runs this, so it takes one pooled connection and no session or
    transaction: one SELECT, and at most every few minutes one UPDATE, atomic on its own
    (BEGIN and ROLLBACK were two of its four round trips)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = datetime.now(UTC)
    async with autocommit(engine).connect() as connection:
        found = await repository.find_viewer(connection, hash_token(token), now)
        if found is None:
            return None
        viewer, last_used = found
        if viewer.token_id is not None and (last_used is None or now - last_used >= TOUCH_EVERY):
            await repository.touch_token(connection, viewer.token_id, now, now - TOUCH_EVERY)
    return viewer


@dataclass(frozen=True)
class Revoked:
    user_id: uuid.UUID
    tokens: int


async def revoke_token(session: AsyncSession, token: str) -> Revoked | None:
    """Revoke one API token (None: no such token)."""
    user_id = await repository.delete_token(session, hash_token(token.strip()))
    return Revoked(user_id, 1) if user_id is not None else None


async def revoke_tokens_of(session: AsyncSession, email: str) -> Revoked:
    """Revoke every API token of the user with ``email``."""
    user = await repository.get_user_by_email(session, email.strip())
    if user is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"No user {email}.", "email")
    return Revoked(user.id, await repository.delete_tokens_of(session, user.id))
