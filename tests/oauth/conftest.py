"""Fixtures for the OAuth2 tests: one identity provider, one Dovecot with its oauth2 passdb,
one XOAUTH2 SMTP server and one app configured for them, for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from core.settings import Settings
from tests.support.app import RunningApp, free_port, serve
from tests.support.mailservers import ImapServer, start_dovecot
from tests.support.oauth import OAuthWorld, generic_provider_settings
from tests.support.oauth_provider import IdentityProvider, running_identity_provider
from tests.support.smtp_server import SmtpServer, running_smtp_server


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    with running_identity_provider() as provider:
        yield provider


@pytest.fixture(scope="session")
def oauth_dovecot(
    tmp_path_factory: pytest.TempPathFactory, identity_provider: IdentityProvider
) -> Iterator[ImapServer]:
    server = start_dovecot(
        Path(tmp_path_factory.mktemp("oauth-dovecot")),
        oauth2_introspection_url=identity_provider.introspection_url_with_credentials,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_smtp(identity_provider: IdentityProvider) -> Iterator[SmtpServer]:
    with running_smtp_server(
        introspection_url=identity_provider.introspection_url_with_credentials
    ) as server:
        yield server


@pytest.fixture(scope="session")
def oauth_settings(
    make_settings: Callable[..., Settings],
    identity_provider: IdentityProvider,
    oauth_dovecot: ImapServer,
    oauth_smtp: SmtpServer,
) -> Settings:
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    identity_provider.redirect_uris.add(callback)
    return make_settings(
        **generic_provider_settings(identity_provider, oauth_dovecot, oauth_smtp, callback)
    )


@pytest_asyncio.fixture(scope="session")
async def oauth_app(oauth_settings: Settings) -> AsyncIterator[RunningApp]:
    port = httpx.URL(oauth_settings.oauth_redirect_url or "").port
    async with serve(oauth_settings, port=port) as app:
        yield app


@pytest.fixture
def oauth(
    identity_provider: IdentityProvider,
    oauth_dovecot: ImapServer,
    oauth_smtp: SmtpServer,
    oauth_app: RunningApp,
    oauth_settings: Settings,
    http: httpx.AsyncClient,
    clean: None,
) -> Iterator[OAuthWorld]:
    yield OAuthWorld(identity_provider, oauth_dovecot, oauth_smtp, oauth_app, oauth_settings, http)
    identity_provider.reset()
