"""Creating companies and users (the CLI's job) and authenticating API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

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
    token = await issue_token(session, user)
    return CreatedUser(company, user, token, created)


async def issue_token(session: AsyncSession, user: User) -> str:
    token = new_token()
    await repository.add_token(session, user.id, hash_token(token))
    return token


async def authenticate(session: AsyncSession, token: str) -> Viewer | None:
    if not token:
        return None
    return await repository.find_viewer(session, hash_token(token))
