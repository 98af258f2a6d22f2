"""The login an account's stored credentials make, built from its row without any network
call: its password opened (core.accounts.credentials), or for an OAuth2 account XOAUTH2
with its access token, which is fetched (and refreshed when due) as the connection is made
(core.oauth.tokens). Raises core.crypto.DecryptionError for an unreadable password."""

from __future__ import annotations

from core.accounts import credentials
from core.mail.server import LoginMethod, ServerLogin, SmtpServer
from core.models import MailAccount
from core.models.enums import OAuthProvider
from core.oauth.tokens import GrantTokens
from core.runtime import Runtime


def _tokens(runtime: Runtime, account: MailAccount) -> GrantTokens:
    return GrantTokens(runtime, account.id, OAuthProvider(account.auth_method.value))


def stored_imap_login(runtime: Runtime, account: MailAccount) -> ServerLogin:
    if not account.uses_oauth:
        return credentials.imap_login(runtime.key_ring, account)
    return ServerLogin(
        host=account.imap_host,
        port=account.imap_port,
        security=account.imap_security,
        username=account.imap_username,
        method=LoginMethod.XOAUTH2,
        tokens=_tokens(runtime, account),
    )


def stored_smtp_login(runtime: Runtime, account: MailAccount) -> SmtpServer | None:
    """None without SMTP settings; a relay when the account sends without a login."""
    if not account.uses_oauth:
        return credentials.smtp_login(runtime.key_ring, account)
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
