"""Proving that a login works before anything is stored."""

from __future__ import annotations

from core.errors import ServiceError
from core.mail.imap import Mailbox, imap_session
from core.mail.server import MailConnectOptions, ServerLogin, SmtpServer
from core.mail.smtp import smtp_session


async def verify_logins(
    imap: ServerLogin, smtp: SmtpServer | None, options: MailConnectOptions
) -> list[Mailbox]:
    """Log in to IMAP (and SMTP when given); the server's folders on success."""
    try:
        async with imap_session(imap, options) as connection:
            mailboxes = await connection.list_mailboxes()
    except ServiceError as exc:
        raise exc.at("imap") from None
    if smtp is not None:
        await verify_smtp(smtp, options)
    return mailboxes


async def verify_smtp(smtp: SmtpServer, options: MailConnectOptions) -> None:
    try:
        async with smtp_session(smtp, options):
            pass
    except ServiceError as exc:
        raise exc.at("smtp") from None
