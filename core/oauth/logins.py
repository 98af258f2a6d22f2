"""The XOAUTH2 logins of an OAuth2 account, built from its row without any network call
(the access token is fetched, and refreshed if due, when the connection is made)."""

from __future__ import annotations

from core.mail.server import LoginMethod, ServerLogin
from core.models import MailAccount
from core.models.enums import OAuthProvider
from core.oauth.tokens import GrantTokens
from core.runtime import Runtime


def _tokens(runtime: Runtime, account: MailAccount) -> GrantTokens:
    return GrantTokens(runtime, account.id, OAuthProvider(account.auth_method.value))


def oauth_imap_login(runtime: Runtime, account: MailAccount) -> ServerLogin:
    return ServerLogin(
        host=account.imap_host,
        port=account.imap_port,
        security=account.imap_security,
        username=account.imap_username,
        method=LoginMethod.XOAUTH2,
        tokens=_tokens(runtime, account),
    )


def oauth_smtp_login(runtime: Runtime, account: MailAccount) -> ServerLogin | None:
    if (
        account.smtp_host is None
        or account.smtp_port is None
        or account.smtp_security is None
        or account.smtp_username is None
    ):
        return None
    return ServerLogin(
        host=account.smtp_host,
        port=account.smtp_port,
        security=account.smtp_security,
        username=account.smtp_username,
        method=LoginMethod.XOAUTH2,
        tokens=_tokens(runtime, account),
    )
