"""The providers' requests as they would reach Google and Microsoft (which these tests cannot
reach), the ID-token path Microsoft needs (checked against the local provider), and the
settings that describe providers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from core.models.enums import ConnectionSecurity, OAuthProvider
from core.oauth.client import ProviderRefused, authorization_url, exchange_code, identify
from core.oauth.providers import MailServer, provider_config
from core.oauth.state import SignInStates
from core.settings import Settings, SettingsError
from tests.support.oauth import OAuthWorld, query_of


def _authorization(settings: Settings, provider: OAuthProvider) -> tuple[str, dict[str, str]]:
    state, verifier, nonce = SignInStates.new_secrets()
    url = authorization_url(
        provider_config(settings, provider),
        settings.oauth_redirect_url or "",
        state=state,
        code_verifier=verifier,
        nonce=nonce,
        login_hint="ann@example.com",
    )
    params = query_of(url)
    assert params["state"] == state and params["nonce"] == nonce
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["login_hint"] == "ann@example.com"
    assert params["redirect_uri"] == "https://mailsync.example.com/oauth/callback"
    assert params["response_type"] == "code"
    return url, params


def test_google_and_microsoft_requests_and_mail_servers(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        oauth_redirect_url="https://mailsync.example.com/oauth/callback",
        google_client_id="g-id.apps.googleusercontent.com",
        google_client_secret="g-secret",
        microsoft_client_id="00000000-1111-2222-3333-444444444444",
        microsoft_client_secret="m-secret",
        microsoft_tenant="contoso.onmicrosoft.com",
    )
    url, params = _authorization(settings, OAuthProvider.GOOGLE)
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert params["client_id"] == "g-id.apps.googleusercontent.com"
    assert params["scope"].split() == ["https://mail.google.com/", "openid", "email"]
    assert (params["access_type"], params["prompt"]) == ("offline", "consent")
    google = provider_config(settings, OAuthProvider.GOOGLE)
    assert google.imap == MailServer("imap.gmail.com", 993, ConnectionSecurity.SSL)
    assert google.smtp == MailServer("smtp.gmail.com", 465, ConnectionSecurity.SSL)
    assert google.token_url == "https://oauth2.googleapis.com/token"

    url, params = _authorization(settings, OAuthProvider.MICROSOFT)
    assert url.startswith(
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
    )
    assert params["scope"].split() == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
        "email",
    ]
    microsoft = provider_config(settings, OAuthProvider.MICROSOFT)
    assert microsoft.imap == MailServer("outlook.office365.com", 993, ConnectionSecurity.SSL)
    assert microsoft.smtp == MailServer("smtp.office365.com", 587, ConnectionSecurity.STARTTLS)
    assert microsoft.userinfo_url is None  # the address comes from the ID token
    assert "secret" not in repr(microsoft)


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        (
            "generic_oauth_token_url",
            "http://idp.example.com/token",
            "MAILSYNC_GENERIC_OAUTH_TOKEN_URL Value error, must be an https:// URL",
        ),
        (
            "generic_oauth_authorize_url",
            "https://user:pw@idp.example.com/a",
            "MAILSYNC_GENERIC_OAUTH_AUTHORIZE_URL Value error, must be an absolute URL",
        ),
        ("microsoft_tenant", "../evil", "MAILSYNC_MICROSOFT_TENANT Value error"),
        ("oauth_app_url", "crm.example.com/x", "MAILSYNC_OAUTH_APP_URL Value error"),
    ],
)
def test_malformed_provider_settings_stop_start_up(
    make_settings: Callable[..., Settings], setting: str, value: str, line: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings(**{setting: value})
    assert str(raised.value).startswith(f"invalid configuration: {line}")


async def test_the_address_can_come_from_the_id_token_alone(oauth: OAuthWorld) -> None:
    """Microsoft's userinfo endpoint does not take an Outlook token: the address is read
    from the ID token, whose audience and nonce must be ours."""
    mailbox = oauth.new_mailbox("idt")
    generic = provider_config(oauth.settings, OAuthProvider.GENERIC)
    config = dataclasses.replace(generic, userinfo_url=None)
    redirect = oauth.settings.oauth_redirect_url or ""

    async def sign_in() -> tuple[str, str, str]:
        state, verifier, nonce = SignInStates.new_secrets()
        url = authorization_url(
            config,
            redirect,
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            login_hint=mailbox.username,
        )
        code = query_of(await oauth.authorize(url))["code"]
        return code, verifier, nonce

    code, verifier, nonce = await sign_in()
    tokens = await exchange_code(config, oauth.settings, redirect, code, verifier)
    assert tokens.id_token is not None
    identity = await identify(config, oauth.settings, tokens, nonce)
    assert identity.address == mailbox.username
    assert identity.subject

    code, verifier, _ = await sign_in()
    tokens = await exchange_code(config, oauth.settings, redirect, code, verifier)
    with pytest.raises(ProviderRefused) as refused:
        await identify(config, oauth.settings, tokens, "another-nonce")
    assert refused.value.error == "invalid_id_token"
    wrong_audience = dataclasses.replace(config, client_id="someone-else")
    with pytest.raises(ProviderRefused):
        await identify(wrong_audience, oauth.settings, tokens, nonce)
