"""Talking to an OAuth2 provider through Authlib's httpx integration.

Authorization URLs (PKCE S256), the code exchange, refreshes, the mailbox's identity (the
userinfo endpoint or the ID token) and revocation. Failures leave as :class:`ProviderRefused`
(an OAuth2 error code such as ``invalid_grant``) or :class:`ProviderUnreachable`; neither
carries a token.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from core.mail.tls import client_tls_context
from core.oauth.providers import ProviderConfig
from core.settings import Settings

# Providers that send no expires_in: assume Google's and Microsoft's usual hour.
DEFAULT_LIFETIME = timedelta(hours=1)
MAX_RESPONSE_BYTES = 64 * 1024


class ProviderRefused(Exception):
    """The provider answered with an OAuth2 error (``error`` is its code, e.g. invalid_grant)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class ProviderUnreachable(Exception):
    """No usable answer: network fault, timeout, a 5xx or something that is not OAuth2."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    expires_at: datetime
    refresh_token: str | None = field(default=None, repr=False)  # None: keep the old one
    scope: str | None = None
    id_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Identity:
    address: str
    subject: str | None
    name: str | None = None


def authorization_url(
    config: ProviderConfig,
    redirect_uri: str,
    *,
    state: str,
    code_verifier: str,
    nonce: str,
    login_hint: str | None,
) -> str:
    client = AsyncOAuth2Client(
        client_id=config.client_id,
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    extra: dict[str, str] = dict(config.authorize_params)
    if config.wants_id_token:
        extra["nonce"] = nonce
    if login_hint:
        extra["login_hint"] = login_hint
    url, _ = client.create_authorization_url(
        config.authorize_url, state=state, code_verifier=code_verifier, **extra
    )
    return str(url)


@asynccontextmanager
async def _client(
    config: ProviderConfig, settings: Settings, redirect_uri: str | None = None
) -> AsyncIterator[AsyncOAuth2Client]:
    client = AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        # Google and Microsoft both take the secret in the form; so does RFC 6749 2.3.1.
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=settings.mail_timeout_seconds,
        verify=client_tls_context(settings.tls_ca_file),
        follow_redirects=False,
        trust_env=False,
    )
    try:
        async with client:
            yield client
    except OAuthError as exc:
        raise ProviderRefused(str(exc.error or "oauth_error")) from None
    except (httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ProviderUnreachable(type(exc).__name__) from None


def _token_set(token: dict[str, Any], started: float) -> TokenSet:
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderRefused("no_access_token")
    token_type = str(token.get("token_type", "Bearer"))
    if token_type.lower() != "bearer":
        raise ProviderRefused("unsupported_token_type")
    expires_in = token.get("expires_in")
    lifetime = (
        timedelta(seconds=float(expires_in))
        if isinstance(expires_in, int | float | str) and str(expires_in).replace(".", "").isdigit()
        else DEFAULT_LIFETIME
    )
    refresh = token.get("refresh_token")
    scope = token.get("scope")
    id_token = token.get("id_token")
    return TokenSet(
        access_token=access,
        # From when the request was sent: never later than the provider's own clock.
        expires_at=datetime.fromtimestamp(started, UTC) + lifetime,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
        id_token=id_token if isinstance(id_token, str) else None,
    )


async def exchange_code(
    config: ProviderConfig, settings: Settings, redirect_uri: str, code: str, code_verifier: str
) -> TokenSet:
    started = time.time()
    async with _client(config, settings, redirect_uri) as client:
        token = await client.fetch_token(
            config.token_url,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
        )
    return _token_set(token, started)


async def refresh_tokens(
    config: ProviderConfig, settings: Settings, refresh_token: str
) -> TokenSet:
    started = time.time()
    async with _client(config, settings) as client:
        token = await client.refresh_token(config.token_url, refresh_token=refresh_token)
    tokens = _token_set(token, started)
    if tokens.refresh_token != refresh_token:
        return tokens  # rotated (Microsoft), or a provider that always sends it
    # Not rotated (Google sends none; Authlib then copies the old one into its answer).
    return TokenSet(tokens.access_token, tokens.expires_at, None, tokens.scope, tokens.id_token)


async def revoke(config: ProviderConfig, settings: Settings, refresh_token: str) -> None:
    """Ask the provider to end the grant (RFC 7009); nothing when it has no endpoint."""
    if config.revocation_url is None:
        return
    async with _client(config, settings) as client:
        response = await client.revoke_token(  # type: ignore[no-untyped-call]  # untyped in the stubs
            config.revocation_url, token=refresh_token, token_type_hint="refresh_token"
        )
    if response.status_code >= 400:
        raise ProviderUnreachable(f"HTTP {response.status_code}")


def _id_token_claims(config: ProviderConfig, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims after checking audience, expiry and nonce.

    Its signature is not checked: it came straight from the token endpoint over TLS, which
    OpenID Connect Core 3.1.3.7 (6) accepts in place of the signature.
    """
    try:
        payload = jws.extract_compact(id_token.encode()).payload
        claims = json.loads(payload)
        if not isinstance(claims, dict):
            raise ProviderRefused("invalid_id_token")
        JWTClaimsRegistry(
            leeway=120,
            aud={"essential": True, "value": config.client_id or ""},
            nonce={"essential": True, "value": nonce},
        ).validate(claims)
    except (JoseError, ValueError, UnicodeError):
        raise ProviderRefused("invalid_id_token") from None
    return claims


async def identify(
    config: ProviderConfig, settings: Settings, tokens: TokenSet, nonce: str
) -> Identity:
    """Who signed in: the verified address from userinfo, else from the ID token."""
    claims: dict[str, Any] = {}
    if tokens.id_token is not None and config.wants_id_token:
        claims = _id_token_claims(config, tokens.id_token, nonce)
    if config.userinfo_url is not None:
        async with _client(config, settings) as client:
            response = await client.request(
                "GET",
                config.userinfo_url,
                headers={"Authorization": f"Bearer {tokens.access_token}"},
                withhold_token=True,  # not this client's token logic: the header says it all
            )
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE_BYTES:
            raise ProviderUnreachable(f"userinfo HTTP {response.status_code}")
        info = response.json()
        if not isinstance(info, dict):
            raise ProviderUnreachable("userinfo is not an object")
        if claims.get("sub") and info.get("sub") != claims["sub"]:
            raise ProviderRefused("userinfo_subject_mismatch")
        claims = {**claims, **info}
    if claims.get("email_verified") is False:
        raise ProviderRefused("email_not_verified")
    address = claims.get("email") or claims.get("preferred_username")
    if not isinstance(address, str) or "@" not in address:
        raise ProviderRefused("no_email")
    subject, name = claims.get("sub"), claims.get("name")
    return Identity(
        address,
        subject if isinstance(subject, str) else None,
        name[:200] if isinstance(name, str) else None,
    )
