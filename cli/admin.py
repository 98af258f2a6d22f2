"""The administrative commands' async halves."""

from __future__ import annotations

from core.accounts.service import change_company_plan
from core.db import create_engine, create_session_factory, session_scope
from core.identity.service import CreatedUser
from core.identity.service import create_user as create_user_service
from core.models import MailAccount, Plan
from core.runtime import open_runtime
from core.settings import Settings


async def create_user(
    database_url: str,
    *,
    company: str,
    email: str,
    name: str | None,
    plan: Plan | None,
    admin: bool,
) -> CreatedUser:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await create_user_service(
                session, company_name=company, email=email, name=name, plan=plan, admin=admin
            )
    finally:
        await engine.dispose()


async def set_plan(settings: Settings, company: str, plan: Plan) -> list[MailAccount]:
    async with open_runtime(settings) as runtime, session_scope(runtime.session_factory) as s:
        return await change_company_plan(s, runtime, company, plan)
