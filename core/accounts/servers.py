"""Changing an account's servers: new IMAP settings, SMTP added, replaced or removed.

Each new setting is read as ``addMailAccount`` reads it, password included: a stored
password is never sent to settings it was not given for. The logins are proven before
anything is stored, with no database connection held while the servers answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.accounts import credentials
from core.accounts.folders import apply_server_folders
from core.accounts.inputs import ServerFields, validate_imap, validate_smtp
from core.accounts.service import AccountService
from core.accounts.status import ACTIVE, SYNCING
from core.accounts.verification import verify_logins, verify_smtp
from core.errors import ErrorCode, ServiceError
from core.identity.viewer import Viewer
from core.mail.imap import Mailbox
from core.mail.server import ServerLogin, SmtpServer
from core.models import MailAccount
from core.sync.requests import request_sync


@dataclass(frozen=True)
class ServerChanges:
    imap: ServerFields | None = None
    smtp: ServerFields | None = None
    remove_smtp: bool = False

    def __bool__(self) -> bool:
        return self.imap is not None or self.smtp is not None or self.remove_smtp


def _validated(
    changes: ServerChanges, address: str
) -> tuple[ServerLogin | None, SmtpServer | None]:
    if changes.smtp is not None and changes.remove_smtp:
        raise ServiceError(
            ErrorCode.INVALID_INPUT, "Give new SMTP settings or removeSmtp, not both.", "smtp"
        )
    imap = smtp = None
    if changes.imap is not None:
        try:
            imap = validate_imap(changes.imap, address)
        except ServiceError as exc:
            raise exc.at("imap") from None
    if changes.smtp is not None:
        try:
            smtp = validate_smtp(changes.smtp, address)
        except ServiceError as exc:
            raise exc.at("smtp") from None
    return imap, smtp


@dataclass(frozen=True)
class ProvenServers:
    """New settings whose logins were just proven, ready to store."""

    imap: ServerLogin | None = None
    mailboxes: list[Mailbox] | None = None  # the new IMAP server's folders
    smtp: SmtpServer | None = None
    remove_smtp: bool = False


async def prove_servers(
    service: AccountService,
    viewer: Viewer,
    account_id: uuid.UUID | None,
    changes: ServerChanges,
) -> ProvenServers:
    """Validate the new settings and prove their logins (the owner's account only). When a
    login is to be proven this ends the session's transaction first, so that no connection
    or lock is held while the servers answer: call it before anything is written."""
    account = await service.owned_for_change(viewer, account_id)
    if account.uses_oauth and (changes.imap is not None or changes.smtp is not None):
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            "This account signs in with OAuth2 and uses its provider's servers.",
            "imap" if changes.imap is not None else "smtp",
        )
    imap, smtp = _validated(changes, account.email_address)
    if imap is not None:
        await service.check_login_unused(
            viewer.user_id, imap.host, imap.username, other_than=account.id
        )
    if imap is None and smtp is None:
        return ProvenServers(remove_smtp=changes.remove_smtp)
    await service.session.rollback()
    await service.count_credential_check(viewer)
    options = service.runtime.mail_options
    mailboxes = None
    if imap is not None:
        mailboxes = await verify_logins(imap, smtp, options)
    elif smtp is not None:
        await verify_smtp(smtp, options)
    return ProvenServers(imap, mailboxes, smtp, changes.remove_smtp)


async def store_servers(
    service: AccountService, viewer: Viewer, account_id: uuid.UUID | None, proven: ProvenServers
) -> MailAccount:
    """Lock the account again and store what ``prove_servers`` proved. New IMAP settings
    bring the folder list the proof made and let an AUTH_FAILED or ERROR account resume."""
    account = await service.owned_for_change(viewer, account_id)
    if proven.imap is not None:  # again, under the lock: an add may have raced the proof
        await service.check_login_unused(
            viewer.user_id, proven.imap.host, proven.imap.username, other_than=account.id
        )
    if proven.imap is not None and proven.mailboxes is not None:
        await _store_imap(service, account, proven.imap, proven.mailboxes)
    if proven.smtp is not None:
        _store_smtp(service, account, proven.smtp)
    elif proven.remove_smtp:
        _clear_smtp(account)
    await service.session.flush()
    return account


async def _store_imap(
    service: AccountService, account: MailAccount, imap: ServerLogin, mailboxes: list[Mailbox]
) -> None:
    account.imap_host = imap.host
    account.imap_port = imap.port
    account.imap_security = imap.security
    account.imap_username = imap.username
    key_ring = service.runtime.key_ring
    account.imap_password_encrypted = credentials.seal(
        key_ring, account.id, credentials.IMAP, imap.password
    )
    # Folders the new server lacks go, with their mail; a folder that stays but whose
    # UIDVALIDITY differs is re-keyed by Message-ID at the next sync, as on any server.
    await apply_server_folders(service.session, account, mailboxes)
    was_running = account.status in (SYNCING, ACTIVE)
    service.resume_after_proven_login(account)
    if was_running:
        request_sync(service.session, service.runtime.jobs, account)


def _store_smtp(service: AccountService, account: MailAccount, smtp: SmtpServer) -> None:
    account.smtp_host = smtp.host
    account.smtp_port = smtp.port
    account.smtp_security = smtp.security
    if isinstance(smtp, ServerLogin):
        account.smtp_username = smtp.username
        account.smtp_password_encrypted = credentials.seal(
            service.runtime.key_ring, account.id, credentials.SMTP, smtp.password
        )
    else:  # a relay without a login
        account.smtp_username = None
        account.smtp_password_encrypted = None


def _clear_smtp(account: MailAccount) -> None:
    """The account no longer sends; its outgoing history stays."""
    account.smtp_host = None
    account.smtp_port = None
    account.smtp_security = None
    account.smtp_username = None
    account.smtp_password_encrypted = None
