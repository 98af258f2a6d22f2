"""Process-wide resources, built once by the API's lifespan or the worker's start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.crypto import KeyRing
from core.db import SessionFactory, create_engine, create_session_factory
from core.events import EventBus
from core.ids import MESSAGE_ID_KEY, MessageIds
from core.inbox.counts import CountCache
from core.jobs import JobQueue
from core.mail.server import MailConnectOptions
from core.models import InstanceSecret
from core.ratelimit import RateLimiter
from core.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    redis: ArqRedis
    key_ring: KeyRing
    events: EventBus
    rate_limiter: RateLimiter
    jobs: JobQueue
    redis_client_name: str
    message_ids: MessageIds
    # Listing counts kept while their folders are unchanged (core/inbox/counts.py).
    counts: CountCache = field(default_factory=CountCache)

    @property
    def mail_options(self) -> MailConnectOptions:
        return MailConnectOptions(
            allow_private_hosts=self.settings.allow_private_hosts,
            timeout=self.settings.mail_timeout_seconds,
            tls_ca_file=self.settings.tls_ca_file,
            ports=self.settings.allowed_mail_ports,
            greeting_timeout=self.settings.mail_greeting_timeout_seconds,
            max_literal_bytes=self.settings.imap_max_literal_bytes,
            max_line_bytes=self.settings.imap_max_line_bytes,
            max_folders=self.settings.max_folders_per_account,
        )


async def _instance_secret(engine: AsyncEngine, name: str) -> bytes:
    async with engine.connect() as connection:
        value = await connection.scalar(
            select(InstanceSecret.value).where(InstanceSecret.name == name)
        )
    if value is None:
        raise LookupError(f"instance secret {name!r} is missing: run `mailsync migrate`")
    return bytes(value)


@asynccontextmanager
async def open_runtime(settings: Settings, *, role: str = "api") -> AsyncIterator[Runtime]:
    """``role`` names the process in ``pg_stat_activity`` (api, worker, tool)."""
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        role=role,
    )
    # Named, so that `CLIENT LIST` tells which process holds which Redis connections.
    client_name = f"mailsync-{os.getpid()}-{secrets.token_hex(4)}"
    redis = ArqRedis.from_url(settings.redis_url, decode_responses=False, client_name=client_name)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        redis=redis,
        key_ring=settings.key_ring,
        events=EventBus(redis),
        rate_limiter=RateLimiter(redis),
        jobs=JobQueue(redis),
        redis_client_name=client_name,
        message_ids=MessageIds(await _instance_secret(engine, MESSAGE_ID_KEY)),
    )
    try:
        yield runtime
    finally:
        await runtime.events.close()
        await redis.aclose()
        await engine.dispose()
