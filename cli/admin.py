"""The administrative commands' async halves."""

from __future__ import annotations

import os
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.accounts.service import change_company_plan
from core.db import create_engine, create_session_factory, session_scope
from core.errors import ErrorCode, ServiceError
from core.events import CredentialsRevoked, EventBus
from core.identity import repository as identity_repository
from core.identity import service as identity
from core.identity.service import CreatedUser
from core.identity.service import create_user as create_user_service
from core.models import MailAccount, Plan
from core.runtime import open_runtime
from core.settings import DatabaseSettings, Settings


async def create_user(
    database_url: str,
    *,
    company: str,
    email: str,
    name: str | None,
    plan: Plan | None,
    admin: bool,
    token_expires_in: timedelta | None = None,
) -> CreatedUser:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await create_user_service(
                session,
                company_name=company,
                email=email,
                name=name,
                plan=plan,
                admin=admin,
                token_expires_in=token_expires_in,
            )
    finally:
        await engine.dispose()


async def issue_token(database_url: str, email: str, expires_in: timedelta | None) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            user = await identity_repository.get_user_by_email(session, email.strip())
            if user is None:
                raise ServiceError(ErrorCode.NOT_FOUND, f"No user {email}.", "email")
            return await identity.issue_token(session, user, expires_in)
    finally:
        await engine.dispose()


async def revoke(settings: DatabaseSettings, *, token: str | None, email: str | None) -> int:
    """Delete the token(s); then tell the API processes (when Redis is configured), whose
    websockets on a revoked token close at once instead of at their next re-check."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            if token:
                revoked = await identity.revoke_token(session, token)
            else:
                revoked = await identity.revoke_tokens_of(session, email or "")
    finally:
        await engine.dispose()
    if revoked is None or revoked.tokens == 0:
        return 0
    redis_url = os.environ.get("MAILSYNC_REDIS_URL")
    if redis_url:
        redis = Redis.from_url(redis_url)
        try:
            await EventBus(redis).publish(revoked.user_id, CredentialsRevoked(token_id=None))
        except (RedisError, OSError):
            pass  # the sockets re-check their token within MAILSYNC_WEBSOCKET_AUTH_RECHECK_SECONDS
        finally:
            await redis.aclose()
    return revoked.tokens


async def set_plan(settings: Settings, company: str, plan: Plan) -> list[MailAccount]:
    async with open_runtime(settings) as runtime, session_scope(runtime.session_factory) as s:
        return await change_company_plan(s, runtime, company, plan)
