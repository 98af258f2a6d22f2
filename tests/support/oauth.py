"""Helpers for the OAuth2 tests: the local identity provider, Dovecot and an SMTP server that
check its tokens, an app configured with the GENERIC provider, and a "browser" that walks
the sign-in (authorization endpoint -> the app's callback -> the application URL)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from core.models import OAuthGrant
from core.oauth.tokens import unseal
from core.runtime import Runtime
from core.settings import Settings
from tests.support.app import RunningApp
from tests.support.graphql import GraphQLClient
from tests.support.imap_admin import ImapAdmin
from tests.support.mailservers import ImapServer
from tests.support.oauth_provider import IdentityProvider
from tests.support.smtp_server import SmtpServer
from tests.support.sync import Mailbox

APP_URL = "https://crm.example.test/settings/mail?tab=accounts"

START = """
mutation Start($input: StartOAuthConnectionInput!) {
  startOAuthConnection(input: $input) {
    authorizationUrl expiresAt
    userErrors { code field message }
  }
}
"""

COMPLETE = """
mutation Complete($input: CompleteOAuthConnectionInput!) {
  completeOAuthConnection(input: $input) {
    account { id emailAddress status authMethod }
    userErrors { code field message }
  }
}
"""

ACCOUNT = """
query Account($id: ID!) {
  mailAccount(id: $id) {
    id emailAddress displayName status authMethod lastError isDefault
    imap { host port security username }
    smtp { host port security username }
    folders { name role }
  }
}
"""


def generic_provider_settings(
    provider: IdentityProvider, dovecot: ImapServer, smtp: SmtpServer, callback_url: str
) -> dict[str, Any]:
    """Settings overrides: the GENERIC provider is the local one, its mail servers Dovecot
    and the SMTP server (plain, on loopback); tokens are refreshed 1 s before expiry."""
    return {
        "oauth_redirect_url": callback_url,
        "oauth_app_url": APP_URL,
        "oauth_refresh_margin_seconds": 1.0,
        "generic_oauth_name": "Test SSO",
        "generic_oauth_client_id": provider.client_id,
        "generic_oauth_client_secret": provider.client_secret,
        "generic_oauth_authorize_url": provider.endpoint("authorize"),
        "generic_oauth_token_url": provider.endpoint("token"),
        "generic_oauth_userinfo_url": provider.endpoint("userinfo"),
        "generic_oauth_revocation_url": provider.endpoint("revoke"),
        "generic_oauth_scopes": "openid email offline_access mail",
        "generic_oauth_imap_host": dovecot.host,
        "generic_oauth_imap_port": dovecot.port,
        "generic_oauth_imap_security": "NONE",
        "generic_oauth_smtp_host": smtp.host,
        "generic_oauth_smtp_port": smtp.port,
        "generic_oauth_smtp_security": "NONE",
    }


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@dataclass
class OAuthWorld:
    provider: IdentityProvider
    dovecot: ImapServer
    smtp: SmtpServer
    app: RunningApp
    settings: Settings
    http: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def client(self, token: str) -> GraphQLClient:
        return GraphQLClient(self.http, self.app.graphql_url, token)

    def new_mailbox(self, name: str = "ann") -> Mailbox:
        """A mailbox on Dovecot (with a password, for seeding mail) whose owner can sign in
        at the identity provider."""
        address = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        password = f"pw-{uuid.uuid4().hex[:8]}"
        self.dovecot.add_user(address, password)
        self.provider.add_user(address, name=name.title())
        return Mailbox(self.dovecot, address, password, ImapAdmin(self.dovecot, address, password))

    async def start(
        self,
        client: GraphQLClient,
        *,
        provider: str = "GENERIC",
        login_hint: str | None = None,
        account_id: str | None = None,
    ) -> dict[str, Any]:
        variables: dict[str, Any] = {"provider": provider}
        if login_hint is not None:
            variables["loginHint"] = login_hint
        if account_id is not None:
            variables["accountId"] = account_id
        data = await client.execute(START, {"input": variables})
        payload: dict[str, Any] = data["startOAuthConnection"]
        return payload

    async def authorize(self, authorization_url: str) -> str:
        """The browser at the provider (which approves or denies at once): where the
        provider sends it back, i.e. the app's callback URL with code and state."""
        response = await self.http.get(authorization_url, follow_redirects=False)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(self.settings.oauth_redirect_url or "-"), location
        return location

    async def callback(self, callback_url: str) -> dict[str, str]:
        """The browser at the app's callback: the parameters it is redirected to the
        application with (accountId, or error)."""
        response = await self.http.get(callback_url, follow_redirects=False)
        assert response.status_code == 303, response.text
        assert response.headers["cache-control"] == "no-store"
        location = response.headers["location"]
        assert location.startswith(APP_URL), location
        params = query_of(location)
        assert params.pop("tab") == "accounts"  # the app URL's own query survives
        return params

    async def connect(self, client: GraphQLClient, mailbox: Mailbox) -> str:
        """The whole sign-in through the callback route; the new account's id."""
        started = await self.start(client, login_hint=mailbox.username)
        assert started["userErrors"] == [], started
        result = await self.callback(await self.authorize(started["authorizationUrl"]))
        assert "error" not in result, result
        return result["accountId"]

    async def grant(self, account_id: str | uuid.UUID) -> OAuthGrant:
        async with self.runtime.session_factory() as session:
            grant = await session.get(OAuthGrant, uuid.UUID(str(account_id)))
        assert grant is not None
        return grant

    async def stored_refresh_token(self, account_id: str | uuid.UUID) -> str:
        grant = await self.grant(account_id)
        return unseal(
            self.runtime, grant.account_id, "oauth_refresh", grant.refresh_token_encrypted
        )

    async def wait_until_refresh_due(self, account_id: str | uuid.UUID) -> None:
        """Until the stored access token is within the refresh margin of its expiry (the
        provider's tokens live a few seconds)."""
        grant = await self.grant(account_id)
        assert grant.access_token_expires_at is not None
        margin = timedelta(seconds=self.settings.oauth_refresh_margin_seconds)
        due = grant.access_token_expires_at - margin
        await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds() + 0.05, 0))
