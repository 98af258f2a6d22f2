"""The OAuth2 providers an account can sign in with: endpoints, scopes and mail servers.

Google and Microsoft are built in (only their client ids and secrets come from the
settings); the GENERIC provider is described entirely by the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import ErrorCode, ServiceError
from core.models.enums import ConnectionSecurity, OAuthProvider
from core.oauth.settings import OAuthSettings


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    security: ConnectionSecurity


@dataclass(frozen=True)
class ProviderConfig:
    provider: OAuthProvider
    name: str  # shown to users: "Google", "Microsoft", the generic provider's name
    authorize_url: str
    token_url: str
    # Where the mailbox address comes from: the userinfo endpoint, else the ID token.
    userinfo_url: str | None
    revocation_url: str | None
    scopes: tuple[str, ...]
    imap: MailServer | None
    smtp: MailServer | None
    client_id: str | None
    client_secret: str | None = field(repr=False)
    # Added to the authorization request (e.g. Google's offline access).
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.imap is not None)

    @property
    def wants_id_token(self) -> bool:
        return "openid" in self.scopes


GOOGLE_SCOPES = ("https://mail.google.com/", "openid", "email")
MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
    "openid",
    "email",
)


def _google(settings: OAuthSettings) -> ProviderConfig:
    return ProviderConfig(
        provider=OAuthProvider.GOOGLE,
        name="Google",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        revocation_url="https://oauth2.googleapis.com/revoke",
        scopes=GOOGLE_SCOPES,
        imap=MailServer("imap.gmail.com", 993, ConnectionSecurity.SSL),
        smtp=MailServer("smtp.gmail.com", 465, ConnectionSecurity.SSL),
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        # A refresh token every time, also when the user has consented before.
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    )


def _microsoft(settings: OAuthSettings) -> ProviderConfig:
    base = f"https://login.microsoftonline.com/{settings.microsoft_tenant}/oauth2/v2.0"
    return ProviderConfig(
        provider=OAuthProvider.MICROSOFT,
        name="Microsoft",
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        # Its userinfo endpoint wants a Graph token; the Outlook token cannot call it.
        userinfo_url=None,
        revocation_url=None,  # Microsoft has no token revocation endpoint
        scopes=MICROSOFT_SCOPES,
        imap=MailServer("outlook.office365.com", 993, ConnectionSecurity.SSL),
        smtp=MailServer("smtp.office365.com", 587, ConnectionSecurity.STARTTLS),
        client_id=settings.microsoft_client_id,
        client_secret=settings.microsoft_client_secret,
        authorize_params=(("prompt", "select_account"),),
    )


def _generic(settings: OAuthSettings) -> ProviderConfig:
    imap = smtp = None
    if settings.generic_oauth_imap_host:
        imap = MailServer(
            settings.generic_oauth_imap_host,
            settings.generic_oauth_imap_port,
            settings.generic_oauth_imap_security,
        )
    if settings.generic_oauth_smtp_host:
        smtp = MailServer(
            settings.generic_oauth_smtp_host,
            settings.generic_oauth_smtp_port,
            settings.generic_oauth_smtp_security,
        )
    endpoints = settings.generic_oauth_authorize_url and settings.generic_oauth_token_url
    return ProviderConfig(
        provider=OAuthProvider.GENERIC,
        name=settings.generic_oauth_name,
        authorize_url=settings.generic_oauth_authorize_url or "",
        token_url=settings.generic_oauth_token_url or "",
        userinfo_url=settings.generic_oauth_userinfo_url,
        revocation_url=settings.generic_oauth_revocation_url,
        scopes=tuple(settings.generic_oauth_scopes.split()),
        imap=imap if endpoints else None,
        smtp=smtp,
        client_id=settings.generic_oauth_client_id,
        client_secret=settings.generic_oauth_client_secret,
    )


def all_providers(settings: OAuthSettings) -> list[ProviderConfig]:
    return [_google(settings), _microsoft(settings), _generic(settings)]


def provider_name(settings: OAuthSettings, provider: OAuthProvider) -> str:
    return next(p.name for p in all_providers(settings) if p.provider is provider)


def provider_config(settings: OAuthSettings, provider: OAuthProvider) -> ProviderConfig:
    """The provider's configuration; PROVIDER_NOT_CONFIGURED without its client or the
    redirect URL."""
    config = next(p for p in all_providers(settings) if p.provider is provider)
    if not config.configured or settings.oauth_redirect_url is None:
        raise ServiceError(
            ErrorCode.PROVIDER_NOT_CONFIGURED,
            f"Sign-in with {config.name} is not configured on this server.",
            "provider",
        )
    return config
