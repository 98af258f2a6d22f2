"""An account's stored mail logins: sealing secrets into its row and opening them again.

Every domain that talks to an account's servers (the sync run, delivery, the Sent copy,
reconnecting) gets its login here, or from core.accounts.logins, which also knows OAuth2
accounts. A secret is encrypted with the deployment's key ring
(``core.crypto``) and bound to its account and field, so a ciphertext copied to another
row or field does not open. Opening raises ``core.crypto.DecryptionError``.
"""

from __future__ import annotations

import uuid

from core.crypto import DecryptionError, KeyRing
from core.mail.server import ServerLogin, SmtpRelay, SmtpServer
from core.models import MailAccount

IMAP = "imap"
SMTP = "smtp"


def _bound_to(account_id: uuid.UUID, field: str) -> str:
    return f"mail_account:{account_id}:{field}"


def seal(key_ring: KeyRing, account_id: uuid.UUID, field: str, secret: str) -> bytes:
    """The ciphertext to store in ``field`` (IMAP or SMTP) of the account."""
    return key_ring.encrypt(secret, _bound_to(account_id, field))


def unseal(key_ring: KeyRing, account_id: uuid.UUID, field: str, sealed: bytes) -> str:
    return key_ring.decrypt(sealed, _bound_to(account_id, field))


def imap_login(key_ring: KeyRing, account: MailAccount, password: str | None = None) -> ServerLogin:
    """The IMAP login: with ``password``, else the stored one opened (an OAuth2 account has
    none: see core.accounts.logins)."""
    if password is None and account.imap_password_encrypted is None:
        raise DecryptionError("the account has no stored password")
    return ServerLogin(
        host=account.imap_host,
        port=account.imap_port,
        security=account.imap_security,
        username=account.imap_username,
        password=password
        if password is not None
        else unseal(key_ring, account.id, IMAP, account.imap_password_encrypted or b""),
    )


def smtp_login(
    key_ring: KeyRing, account: MailAccount, password: str | None = None
) -> SmtpServer | None:
    """The SMTP server (None without SMTP) with ``password``, else the stored one opened;
    None when that is missing. An account without an SMTP username sends through a relay."""
    host, port, security = account.smtp_host, account.smtp_port, account.smtp_security
    if host is None or port is None or security is None:
        return None
    if account.smtp_username is None:
        return SmtpRelay(host, port, security)
    if password is None:
        if account.smtp_password_encrypted is None:
            return None
        password = unseal(key_ring, account.id, SMTP, account.smtp_password_encrypted)
    return ServerLogin(host, port, security, account.smtp_username, password)


def reseal_smtp_if_old_key(key_ring: KeyRing, account: MailAccount) -> None:
    """Re-encrypt a stored SMTP secret under the current key (key rotation); one that no
    key opens any more is left as it is (sending asks for the SMTP password again)."""
    sealed = account.smtp_password_encrypted
    if sealed is None or not key_ring.needs_reencryption(sealed):
        return
    try:
        secret = unseal(key_ring, account.id, SMTP, sealed)
    except DecryptionError:
        return
    account.smtp_password_encrypted = seal(key_ring, account.id, SMTP, secret)
