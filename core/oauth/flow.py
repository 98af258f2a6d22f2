"""Connecting (or reconnecting) a mail account through an OAuth2 sign-in.

``start`` runs the plan's checks, remembers a single-use state with a PKCE verifier and a
nonce (core.oauth.state) and answers the provider's authorization URL. ``complete`` takes
the state back (once; it must be the same viewer when one is signed in), exchanges the
code, learns the mailbox address, proves an XOAUTH2 login to IMAP (and SMTP when the
provider sends), lists the folders and stores the account READY exactly as addMailAccount
does; for a reconnect it stores the new tokens and resumes the account instead. No
database connection is held while the provider or a mail server is talked to.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts.inputs import validate_address, validate_display_name
from core.accounts.service import AccountService
from core.accounts.verification import verify_logins
from core.errors import ErrorCode, ServiceError
from core.identity import repository as identity_repository
from core.identity.viewer import Viewer
from core.mail.server import LoginMethod, ServerLogin
from core.models import AccountStatus, MailAccount, OAuthGrant, Sharing
from core.models.enums import OAuthProvider
from core.oauth import repository
from core.oauth.client import (
    Identity,
    ProviderRefused,
    ProviderUnreachable,
    TokenSet,
    authorization_url,
    exchange_code,
    identify,
)
from core.oauth.providers import MailServer, ProviderConfig, provider_config
from core.oauth.state import PendingSignIn, SignInStates
from core.oauth.tokens import store_tokens
from core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_CODE_LENGTH = 4096
START_WINDOW_SECONDS = 60.0
# What a provider sends back when the user (or their admin) said no.
_DENIALS = frozenset(
    {"access_denied", "consent_required", "interaction_required", "login_required"}
)


@dataclass(frozen=True)
class SignInStart:
    authorization_url: str
    expires_at: datetime


def _invalid_state() -> ServiceError:
    return ServiceError(
        ErrorCode.INVALID_STATE,
        "This sign-in has expired or was already used; start it again.",
        "state",
    )


def _login(server: MailServer, address: str, access_token: str) -> ServerLogin:
    return ServerLogin(
        host=server.host,
        port=server.port,
        security=server.security,
        username=address,
        password=access_token,
        method=LoginMethod.XOAUTH2,
    )


class OAuthConnections:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.accounts = AccountService(session, runtime)
        self.states = SignInStates(
            runtime.redis, runtime.key_ring, runtime.settings.oauth_state_seconds
        )

    @property
    def _redirect_uri(self) -> str:
        redirect = self.runtime.settings.oauth_redirect_url
        assert redirect is not None  # provider_config() refuses to work without it
        return redirect

    async def start(
        self,
        viewer: Viewer,
        provider: OAuthProvider,
        login_hint: str | None = None,
        account_id: uuid.UUID | None = None,
    ) -> SignInStart:
        """The URL to send the browser to; nothing is stored in PostgreSQL yet."""
        config = provider_config(self.runtime.settings, provider)
        hint = validate_address(login_hint, "loginHint") if login_hint else None
        if account_id is None:
            await self.accounts.check_room_for(viewer.user_id, viewer.plan, None)
        else:
            account = await self.accounts.owned_for_change(viewer, account_id)
            if account.auth_method is not provider.auth_method:
                raise ServiceError(
                    ErrorCode.INVALID_INPUT,
                    f"This account does not sign in with {config.name}.",
                    "provider",
                )
            account_id, hint = account.id, hint or account.email_address
        allowed = await self.runtime.rate_limiter.allow(
            f"oauth-start:{viewer.user_id}",
            limit=self.runtime.settings.credential_checks_per_minute,
            window_seconds=START_WINDOW_SECONDS,
        )
        if not allowed:
            raise ServiceError(
                ErrorCode.RATE_LIMITED, "Too many sign-ins started in the last minute."
            )
        state, verifier, nonce = SignInStates.new_secrets()
        pending = await self.states.remember(
            state,
            user_id=viewer.user_id,
            provider=provider,
            code_verifier=verifier,
            nonce=nonce,
            login_hint=hint,
            account_id=account_id,
        )
        url = authorization_url(
            config,
            self._redirect_uri,
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            login_hint=hint,
        )
        return SignInStart(url, pending.expires_at)

    async def complete(
        self, viewer: Viewer | None, state: str | None, code: str | None, error: str | None
    ) -> MailAccount:
        """Finish the sign-in started with ``state``. ``viewer`` None: the browser came
        back to the callback route, and the sign-in completes for whoever started it."""
        pending = await self.states.take(state or "")
        if pending is None:
            raise _invalid_state()
        if viewer is not None and viewer.user_id != pending.user_id:
            raise _invalid_state()
        viewer = await identity_repository.viewer_of_user(self.session, pending.user_id)
        if viewer is None:
            raise _invalid_state()
        config = provider_config(self.runtime.settings, pending.provider)
        if error is not None:
            if error in _DENIALS:
                raise ServiceError(
                    ErrorCode.ACCESS_DENIED, f"The sign-in with {config.name} was not allowed."
                )
            raise ServiceError(
                ErrorCode.OAUTH_FAILED, f"{config.name} could not complete the sign-in."
            )
        if not code or len(code) > MAX_CODE_LENGTH:
            raise ServiceError(
                ErrorCode.INVALID_INPUT, "The authorization code is missing.", "code"
            )
        if pending.account_id is None:
            await self.accounts.check_room_for(viewer.user_id, viewer.plan, None)
        # Nothing written yet: give the connection back while we talk to the provider
        # and the mail servers; the plan's checks are repeated under a lock afterwards.
        await self.session.rollback()
        await self.accounts.count_credential_check(viewer)
        tokens, identity = await self._sign_in(config, pending, code)
        address = validate_address(identity.address)
        if pending.account_id is not None:
            await self._check_same_mailbox(viewer, pending.account_id, address)
            await self.session.rollback()
        assert config.imap is not None  # configured providers have one
        mailboxes = await verify_logins(
            _login(config.imap, address, tokens.access_token),
            _login(config.smtp, address, tokens.access_token) if config.smtp else None,
            self.runtime.mail_options,
        )
        if pending.account_id is not None:
            return await self._store_reconnect(viewer, pending.account_id, identity, tokens)
        account = self._new_account(viewer, config, address, identity)
        account = await self.accounts.store_new_account(viewer, account, mailboxes)
        grant = OAuthGrant(
            account_id=account.id,
            subject=identity.subject,
            scope=tokens.scope or " ".join(config.scopes),
            refresh_token_encrypted=b"",
        )
        store_tokens(self.runtime, grant, tokens)
        self.session.add(grant)
        await self.session.flush()
        return account

    async def _sign_in(
        self, config: ProviderConfig, pending: PendingSignIn, code: str
    ) -> tuple[TokenSet, Identity]:
        try:
            tokens = await exchange_code(
                config, self.runtime.settings, self._redirect_uri, code, pending.code_verifier
            )
            if tokens.refresh_token is None:
                raise ProviderRefused("no_refresh_token")
            identity = await identify(config, self.runtime.settings, tokens, pending.nonce)
        except ProviderRefused as refusal:
            log.info("oauth sign-in refused by %s: %s", config.name, refusal.error)
            raise ServiceError(
                ErrorCode.OAUTH_FAILED,
                f"{config.name} did not accept the sign-in ({refusal.error}); start it again.",
            ) from None
        except ProviderUnreachable as fault:
            log.warning("oauth sign-in with %s failed: %s", config.name, fault)
            raise ServiceError(
                ErrorCode.SERVER_UNREACHABLE,
                f"Could not reach {config.name}'s sign-in service; try again.",
            ) from None
        return tokens, identity

    async def _check_same_mailbox(
        self, viewer: Viewer, account_id: uuid.UUID, address: str
    ) -> None:
        account = await self.accounts.owned_for_change(viewer, account_id)
        if account.email_address.lower() != address.lower():
            raise ServiceError(
                ErrorCode.ACCOUNT_MISMATCH,
                f"You signed in as {address}, but this account is {account.email_address}.",
            )

    def _new_account(
        self, viewer: Viewer, config: ProviderConfig, address: str, identity: Identity
    ) -> MailAccount:
        assert config.imap is not None
        smtp = config.smtp
        return MailAccount(
            id=uuid.uuid4(),
            owner_id=viewer.user_id,
            email_address=address,
            display_name=validate_display_name(identity.name),
            status=AccountStatus.READY,
            sharing=Sharing.PRIVATE,
            labels=[],
            auth_method=config.provider.auth_method,
            imap_host=config.imap.host,
            imap_port=config.imap.port,
            imap_security=config.imap.security,
            imap_username=address,
            imap_password_encrypted=None,
            smtp_host=smtp.host if smtp else None,
            smtp_port=smtp.port if smtp else None,
            smtp_security=smtp.security if smtp else None,
            smtp_username=address if smtp else None,
            smtp_password_encrypted=None,
        )

    async def _store_reconnect(
        self, viewer: Viewer, account_id: uuid.UUID, identity: Identity, tokens: TokenSet
    ) -> MailAccount:
        account = await self.accounts.owned_for_change(viewer, account_id)
        grant = await repository.lock_grant(self.session, account.id)
        if grant is None:
            grant = OAuthGrant(account_id=account.id, refresh_token_encrypted=b"")
            self.session.add(grant)
        grant.subject = identity.subject or grant.subject
        store_tokens(self.runtime, grant, tokens)
        grant.refreshed_at = datetime.now(UTC)
        self.accounts.resume_after_proven_login(account)
        await self.session.flush()
        return account
