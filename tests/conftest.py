"""Fixtures: real PostgreSQL, Redis, Dovecot and pymap, and the real app over HTTP.

Servers come from MAILSYNC_TEST_DATABASE_URL / MAILSYNC_TEST_REDIS_URL when set, else
embedded ones. Nothing is skipped: a missing server fails the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from core.crypto import generate_key
from core.runtime import Runtime
from core.settings import Settings, load_settings
from tests.support.app import RunningApp, serve
from tests.support.database import TABLES, migrated_database, redis_url, server_url
from tests.support.factories import TestUser, make_user
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer, start_dovecot, start_pymap


@pytest.fixture(scope="session")
def database_server() -> Iterator[str]:
    with server_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(database_server: str) -> Iterator[str]:
    with migrated_database(database_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapServer]:
    server = start_dovecot(tmp_path_factory.mktemp("dovecot"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pymap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapServer]:
    server = start_pymap(tmp_path_factory.mktemp("pymap"))
    yield server
    server.stop()


@pytest.fixture(params=["dovecot", "pymap"])
def imap_server(request: pytest.FixtureRequest) -> ImapServer:
    """Each test using this runs against Dovecot and against pymap."""
    server: ImapServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture(scope="session")
def secret_key() -> str:
    return generate_key()


@pytest.fixture(scope="session")
def make_settings(
    database_url: str, redis_server: str, secret_key: str, dovecot: ImapServer
) -> Callable[..., Settings]:
    """Settings for a test app; keyword arguments override the test defaults."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_server,
            "secret_keys": secret_key,
            "allow_private_hosts": True,
            "tls_ca_file": dovecot.ca_file,
            "mail_timeout_seconds": 5.0,
            "mail_ports": "any",  # the test servers listen on free ports
        }
        values.update(overrides)
        return load_settings(Settings, **values)

    return build


@pytest_asyncio.fixture(scope="session")
async def running_app(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningApp]:
    async with serve(make_settings()) as app:
        yield app


@pytest_asyncio.fixture
async def clean(running_app: RunningApp) -> None:
    """Every test starts with empty tables and an empty Redis database."""
    runtime = running_app.runtime
    async with runtime.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    await runtime.redis.flushdb()


@pytest.fixture
def runtime(running_app: RunningApp, clean: None) -> Runtime:
    return running_app.runtime


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # A client must drop an idle connection before the server does (uvicorn closes one
    # after 5 s): with both at 5 s, a request sent as the server's FIN is on its way fails
    # with ReadError, as a long differential case once did in CI.
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        yield client


@pytest.fixture
def gql(running_app: RunningApp, http: httpx.AsyncClient, clean: None) -> GraphQLClient:
    """An anonymous client; ``gql.as_user(user.token)`` for a signed-in one."""
    return GraphQLClient(http, running_app.graphql_url)


@pytest.fixture
def new_user(runtime: Runtime) -> Callable[..., Awaitable[TestUser]]:
    async def factory(**kwargs: Any) -> TestUser:
        return await make_user(runtime, **kwargs)

    return factory
