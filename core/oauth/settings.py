"""OAuth2 sign-in settings (``MAILSYNC_GOOGLE_*``, ``MAILSYNC_MICROSOFT_*``,
``MAILSYNC_GENERIC_OAUTH_*``, ``MAILSYNC_OAUTH_*``), mixed into :class:`core.settings.Settings`.

A provider without its client id (or, for the generic one, its endpoints and IMAP host) is
not configured: the API lists it as such and refuses to start a sign-in with it.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from core.models.enums import ConnectionSecurity

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(value: str | None) -> str | None:
    """An https URL (http only for loopback hosts: a local identity provider)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urllib.parse.urlsplit(value)
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValueError("must be an absolute URL without credentials or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
        raise ValueError("must be an https:// URL (http:// only for loopback hosts)")
    return value


class OAuthSettings(BaseSettings):
    # Where providers send the browser back: this API's GET /oauth/callback as the world
    # sees it (or an SPA route that calls completeOAuthConnection). Registered with each
    # provider as the redirect URI.
    oauth_redirect_url: str | None = None
    # Where GET /oauth/callback sends the browser afterwards, with ?accountId= or ?error=.
    oauth_app_url: str | None = None
    # How long a started sign-in may take before its state expires.
    oauth_state_seconds: float = Field(default=600.0, gt=0, le=3600)
    # Access tokens are refreshed this long before they expire.
    oauth_refresh_margin_seconds: float = Field(default=120.0, ge=0, le=1800)

    google_client_id: str | None = None
    google_client_secret: str | None = Field(default=None, repr=False)

    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = Field(default=None, repr=False)
    # "common" (work, school and personal accounts), "organizations", or one tenant's id.
    microsoft_tenant: str = "common"

    generic_oauth_name: str = "Single sign-on"
    generic_oauth_client_id: str | None = None
    generic_oauth_client_secret: str | None = Field(default=None, repr=False)
    generic_oauth_authorize_url: str | None = None
    generic_oauth_token_url: str | None = None
    # Where the mailbox address is read; without it, from the ID token (scope openid).
    generic_oauth_userinfo_url: str | None = None
    generic_oauth_revocation_url: str | None = None
    generic_oauth_scopes: str = "openid email offline_access"
    generic_oauth_imap_host: str | None = None
    generic_oauth_imap_port: int = Field(default=993, ge=1, le=65535)
    generic_oauth_imap_security: ConnectionSecurity = ConnectionSecurity.SSL
    generic_oauth_smtp_host: str | None = None
    generic_oauth_smtp_port: int = Field(default=465, ge=1, le=65535)
    generic_oauth_smtp_security: ConnectionSecurity = ConnectionSecurity.SSL

    @field_validator("oauth_redirect_url", "oauth_app_url")
    @classmethod
    def _check_own_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urllib.parse.urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("must be an absolute http(s) URL without a fragment")
        return value.strip()

    @field_validator(
        "generic_oauth_authorize_url",
        "generic_oauth_token_url",
        "generic_oauth_userinfo_url",
        "generic_oauth_revocation_url",
    )
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return check_endpoint_url(value)

    @field_validator("microsoft_tenant")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        if not _TENANT.match(value):
            raise ValueError("must be common, organizations, consumers or a tenant id")
        return value

    @field_validator(
        "google_client_id",
        "google_client_secret",
        "microsoft_client_id",
        "microsoft_client_secret",
        "generic_oauth_client_id",
        "generic_oauth_client_secret",
        "generic_oauth_imap_host",
        "generic_oauth_smtp_host",
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None
