"""Access tokens for XOAUTH2 logins, refreshed shortly before they expire.

Whichever process needs a token (an API request, a sync worker, a sending worker) asks
:class:`GrantTokens`. A stored token that is still good for longer than
``MAILSYNC_OAUTH_REFRESH_MARGIN_SECONDS`` is used as it is; otherwise the process claims the
grant's row (core/claims.py; waiting for another process's claim, across processes and
machines, by looking again every CLAIM_POLL_SECONDS), reads the grant again (another
process may have just refreshed it) and only then asks the provider. So two processes never
refresh one grant at once: with providers that rotate refresh tokens (Microsoft) the loser
of such a race would present a used refresh token and be logged out. The claim is held only
around the refresh itself, and no database connection while the provider answers.

A refused refresh (``invalid_grant``: the user or an admin revoked access, or the grant
expired) sets the account AUTH_FAILED with a message that says to reconnect; a provider
that cannot be reached is a passing fault (SERVER_UNREACHABLE) that the caller retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import credentials
from core.accounts import repository as account_repository
from core.accounts.status import transition
from core.crypto import DecryptionError
from core.db import after_commit, session_scope
from core.errors import ErrorCode, ServiceError
from core.models import AccountStatus, MailAccount, OAuthGrant
from core.models.enums import OAuthProvider
from core.oauth import repository
from core.oauth.client import (
    ProviderRefused,
    ProviderUnreachable,
    TokenSet,
    refresh_tokens,
    revoke,
)
from core.oauth.providers import provider_config, provider_name
from core.runtime import Runtime

log = logging.getLogger(__name__)

CLAIM_POLL_SECONDS = 0.2  # how often a process waiting for another's refresh looks again
# Statuses a refused refresh turns into AUTH_FAILED (a PAUSED account stays paused).
_LIVE = (AccountStatus.READY, AccountStatus.SYNCING, AccountStatus.ACTIVE, AccountStatus.ERROR)


class SignInExpired(ServiceError):
    """The provider no longer honours the grant: only signing in again helps."""

    def __init__(self, provider_name: str, message: str | None = None) -> None:
        super().__init__(
            ErrorCode.INVALID_CREDENTIALS,
            message
            or f"{provider_name} no longer accepts this account's sign-in (access was revoked "
            "or has expired); reconnect the account by signing in again.",
        )


def seal(runtime: Runtime, account_id: uuid.UUID, field: str, secret: str) -> bytes:
    return credentials.seal(runtime.key_ring, account_id, field, secret)


def unseal(runtime: Runtime, account_id: uuid.UUID, field: str, sealed: bytes) -> str:
    return credentials.unseal(runtime.key_ring, account_id, field, sealed)


def store_tokens(runtime: Runtime, grant: OAuthGrant, tokens: TokenSet) -> None:
    """Put fresh tokens on the row, encrypted; a refresh token that did not rotate is only
    re-sealed when an older key sealed it (key rotation)."""
    account_id = grant.account_id
    grant.access_token_encrypted = seal(runtime, account_id, "oauth_access", tokens.access_token)
    grant.access_token_expires_at = tokens.expires_at
    if tokens.scope:
        grant.scope = tokens.scope
    if tokens.refresh_token is not None:
        grant.refresh_token_encrypted = seal(
            runtime, account_id, "oauth_refresh", tokens.refresh_token
        )
    elif runtime.key_ring.needs_reencryption(grant.refresh_token_encrypted):
        old = unseal(runtime, account_id, "oauth_refresh", grant.refresh_token_encrypted)
        grant.refresh_token_encrypted = seal(runtime, account_id, "oauth_refresh", old)


@dataclass(frozen=True)
class _Stored:
    access_token: str | None
    expires_at: datetime | None
    refresh_token: str


class GrantTokens:
    """The :class:`core.mail.server.AccessTokens` of one OAuth2 account."""

    def __init__(self, runtime: Runtime, account_id: uuid.UUID, provider: OAuthProvider) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.provider = provider

    def _margin(self) -> timedelta:
        return timedelta(seconds=self.runtime.settings.oauth_refresh_margin_seconds)

    def _usable(self, stored: _Stored) -> str | None:
        if stored.access_token is None or stored.expires_at is None:
            return None
        if stored.expires_at - self._margin() <= datetime.now(UTC):
            return None
        return stored.access_token

    async def _stored(self) -> _Stored:
        async with self.runtime.session_factory() as session:
            grant = await repository.get_grant(session, self.account_id)
        name = self._provider_name()
        if grant is None:
            raise SignInExpired(name)
        try:
            access = (
                unseal(self.runtime, self.account_id, "oauth_access", grant.access_token_encrypted)
                if grant.access_token_encrypted is not None
                else None
            )
            refresh = unseal(
                self.runtime, self.account_id, "oauth_refresh", grant.refresh_token_encrypted
            )
        except DecryptionError:
            error = SignInExpired(
                name, "The stored sign-in cannot be decrypted; reconnect the account."
            )
            await self._mark_signed_out(error.message)
            raise error from None
        return _Stored(access, grant.access_token_expires_at, refresh)

    def _provider_name(self) -> str:
        return provider_name(self.runtime.settings, self.provider)

    async def current(self) -> str:
        usable = self._usable(await self._stored())
        return usable if usable is not None else await self._refresh(refused=None)

    async def after_refusal(self, refused: str) -> str | None:
        return await self._refresh(refused=refused)

    async def _refresh(self, refused: str | None) -> str:
        """A new access token, refreshed by this process, or by another one that held the
        grant's claim while this one waited; ``refused``: the token a server just turned
        down (not taken back from the store)."""
        token = uuid.uuid4()  # this refresh's claim on the grant
        reused = await self._claim_or_reuse(token, refused)
        if reused is not None:
            return reused
        sessions = self.runtime.session_factory
        async with repository.REFRESH_CLAIM.held(sessions, self.account_id, token):
            return await self._refresh_claimed(refused)

    async def _claim_or_reuse(self, token: uuid.UUID, refused: str | None) -> str | None:
        """Claim the grant (None), or return the token another process refreshed while
        this one waited for its claim (polled: no connection is held meanwhile)."""
        wait = self.runtime.settings.mail_timeout_seconds * 2  # one refresh, with slack
        deadline = time.monotonic() + wait
        while True:
            async with session_scope(self.runtime.session_factory) as session:
                if await repository.REFRESH_CLAIM.take(session, self.account_id, token):
                    return None
            usable = self._usable(await self._stored())  # raises if the grant is gone
            if usable is not None and usable != refused:
                return usable  # another process refreshed it while we waited
            if time.monotonic() >= deadline:
                raise ServiceError(
                    ErrorCode.SERVER_UNREACHABLE,
                    f"Refreshing the sign-in with {self._provider_name()} is taking too long; "
                    "retrying later.",
                )
            await asyncio.sleep(CLAIM_POLL_SECONDS)

    async def _refresh_claimed(self, refused: str | None) -> str:
        name = self._provider_name()
        stored = await self._stored()
        usable = self._usable(stored)
        if usable is not None and usable != refused:
            return usable  # another process refreshed it just before we claimed it
        config = provider_config(self.runtime.settings, self.provider)
        try:
            tokens = await refresh_tokens(config, self.runtime.settings, stored.refresh_token)
        except ProviderRefused as refusal:
            if refusal.error != "invalid_grant":
                log.warning("oauth refresh for account %s: %s", self.account_id, refusal.error)
                raise ServiceError(
                    ErrorCode.SERVER_UNREACHABLE,
                    f"{name} refused to refresh the sign-in ({refusal.error}); retrying later.",
                ) from None
            error = SignInExpired(name)
            await self._mark_signed_out(error.message)
            raise error from None
        except ProviderUnreachable as fault:
            log.warning("oauth refresh for account %s failed: %s", self.account_id, fault)
            raise ServiceError(
                ErrorCode.SERVER_UNREACHABLE,
                f"Could not reach {name}'s sign-in service; retrying later.",
            ) from None
        await self._save(tokens)
        log.info("oauth tokens of account %s refreshed", self.account_id)
        return tokens.access_token

    async def _save(self, tokens: TokenSet) -> None:
        async with session_scope(self.runtime.session_factory) as session:
            grant = await repository.lock_grant(session, self.account_id)
            if grant is None:
                return  # removed meanwhile
            store_tokens(self.runtime, grant, tokens)
            grant.refreshed_at = datetime.now(UTC)

    async def _mark_signed_out(self, message: str) -> None:
        """AUTH_FAILED with ``message``; the account waits for a new sign-in."""
        async with session_scope(self.runtime.session_factory) as session:
            account = await account_repository.get(session, self.account_id, lock=True)
            grant = await repository.lock_grant(session, self.account_id)
            if grant is not None:
                grant.access_token_encrypted = None
                grant.access_token_expires_at = None
            if account is None:
                return
            account.last_error = message
            account.next_sync_at = None
            if account.status in _LIVE:
                transition(session, self.runtime.events, account, AccountStatus.AUTH_FAILED)


async def revoke_grant_after_commit(
    session: AsyncSession, runtime: Runtime, account: MailAccount
) -> None:
    """Once the account's removal has committed, ask the provider to end its grant (where
    the provider has a revocation endpoint: Google, a generic one; Microsoft has none).
    Best effort: the tokens are gone from here either way."""
    if not account.uses_oauth:
        return
    grant = await repository.get_grant(session, account.id)
    if grant is None:
        return
    try:
        refresh_token = unseal(runtime, account.id, "oauth_refresh", grant.refresh_token_encrypted)
    except DecryptionError:
        return
    provider, account_id, settings = (
        OAuthProvider(account.auth_method.value),
        account.id,
        runtime.settings,
    )

    async def revoke_grant() -> None:
        try:
            await revoke(provider_config(settings, provider), settings, refresh_token)
        except (ServiceError, ProviderRefused, ProviderUnreachable):
            log.warning("could not revoke the OAuth2 grant of removed account %s", account_id)

    after_commit(session, revoke_grant)
