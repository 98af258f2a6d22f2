"""Delivering one outgoing message: SMTP, then a copy in the account's Sent folder.

The delivery state lives in PostgreSQL, so a job that arq runs again never sends twice:

* QUEUED, ``smtp_data_started_at`` NULL: no attempt has reached DATA; (re)trying is safe.
* QUEUED, ``smtp_data_started_at`` set: committed just before DATA and cleared when the
  server answers 4xx. Finding it set means an earlier attempt died between DATA and
  recording its outcome; the server may have accepted the mail, so it is FAILED, never
  sent again. That window (one DATA round trip plus one commit) is the only one left.
* SENT: SMTP accepted it; only the Sent-folder copy may still be due (``sent_copy``
  PENDING). A passing IMAP fault leaves it PENDING for the requeue cron (for a day), a
  lasting one (refused login, no folder) makes it FAILED; neither resends the mail. The
  APPEND checks for the Message-ID first, so a repeated copy step does not file it twice.
* FAILED: nothing more to do.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aioimaplib
import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.accounts import repository as accounts
from core.accounts.logins import stored_imap_login, stored_smtp_login
from core.accounts.status import RUNNING
from core.crypto import DecryptionError
from core.db import SessionFactory, session_scope
from core.errors import ErrorCode, ServiceError
from core.mail.imap import imap_session
from core.mail.server import ServerLogin, SmtpServer
from core.mail.smtp import smtp_session
from core.models import MailAccount, OutgoingMessage, SendStatus, SentCopy
from core.oauth.tokens import SignInExpired
from core.runtime import Runtime
from core.sending import repository
from core.sending.compose import envelope_recipients, needs_smtputf8
from core.sending.service import announce_change
from core.sync.requests import request_syncs

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_SECONDS = 3600  # doubling stops at an hour between attempts
# Filing the Sent copy is retried this long after the send, unless the fault is one that
# waiting does not fix (a refused login, no such folder, a host no longer allowed).
SENT_COPY_RETRY_WINDOW = timedelta(days=1)
_PERMANENT_COPY_ERRORS = frozenset(
    {ErrorCode.INVALID_CREDENTIALS, ErrorCode.UNKNOWN_LABEL, ErrorCode.HOST_NOT_ALLOWED}
)

# Providers whose SMTP service files every sent message in the Sent folder itself: an
# APPEND would show the message twice. Matched against the account's SMTP host.
SERVER_FILES_SENT_MAIL = (
    "smtp.gmail.com",  # Gmail and Google Workspace
    "smtp.googlemail.com",
    "smtp.office365.com",  # Microsoft 365 and Outlook.com
    "smtp-mail.outlook.com",
)
UNCERTAIN = (
    "The connection broke while the server was taking this message; it may have been "
    "delivered, so it is not sent again. Check the Sent folder."
)


class TemporaryFailure(Exception):
    """Worth another attempt later (4xx, connection faults)."""


class PermanentFailure(Exception):
    """Retrying cannot help (5xx, a refused login, bad settings)."""


@dataclass(frozen=True)
class Attempt:
    login: SmtpServer
    sender: str
    recipients: list[str]
    mime: bytes
    utf8: bool
    attempts: int


@dataclass(frozen=True)
class SentCopyTask:
    login: ServerLogin
    folder: str
    mime: bytes
    message_id: str
    sent_at: datetime
    account_id: uuid.UUID
    sync_after: bool  # the Sent folder is synced: sync now so that the copy shows soon


def _discard_content(outgoing: OutgoingMessage) -> None:
    """Once nothing will send or file the message again (sent and filed, or given up on),
    its stored MIME, attachments included, is dropped: the user's copy is the server's."""
    outgoing.mime = b""


def _sends_own_copy(account: MailAccount) -> bool:
    host = (account.smtp_host or "").lower().rstrip(".")
    return host in SERVER_FILES_SENT_MAIL


def _reply_text(code: int, message: str) -> str:
    text = " ".join(message.split())
    return f"{code} {text[:200]}"


class OutgoingDelivery:
    def __init__(self, runtime: Runtime, outgoing_id: uuid.UUID) -> None:
        self.runtime = runtime
        self.outgoing_id = outgoing_id
        self.sessions: SessionFactory = runtime.session_factory  # every step's, one at a time
        self.token = uuid.uuid4()  # this delivery's claim on the message (core/claims.py)

    async def run(self) -> float | None:
        """Deliver (or finish) the message; seconds to wait before the next attempt when a
        temporary failure should be retried (or another holder's claim may run out), else
        None."""
        claimed = await repository.claim_delivery(self.sessions, self.outgoing_id, self.token)
        if claimed == "gone":
            log.info("outgoing %s no longer exists", self.outgoing_id)
            return None
        if claimed != "claimed":
            # Delivered by another worker now, or by one that died: look again once its claim
            # has run out (a finished delivery is then a no-op).
            log.info("outgoing %s is being delivered by another worker", self.outgoing_id)
            return claimed + 1.0
        async with repository.DELIVERY_CLAIM.held(self.sessions, self.outgoing_id, self.token):
            return await self._deliver()

    async def _deliver(self) -> float | None:
        attempt = await self._begin()
        if attempt is not None:
            retry_in = await self._transmit(attempt)
            if retry_in is not None:
                return retry_in
        await self._file_sent_copy()
        return None

    # -- SMTP ------------------------------------------------------------------------------

    async def _begin(self) -> Attempt | None:
        """Count an attempt and read what to send; None when no SMTP attempt is due."""
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is None or outgoing.status is not SendStatus.QUEUED:
                return None
            if outgoing.smtp_data_started_at is not None:
                self._fail(session, outgoing, UNCERTAIN)
                return None
            account = (
                await accounts.get(session, outgoing.account_id) if outgoing.account_id else None
            )
            if account is None:
                self._fail(session, outgoing, "The account was removed before it was sent.")
                return None
            try:
                login = stored_smtp_login(self.runtime, account)
            except DecryptionError:
                login = None
            if login is None:
                self._fail(
                    session,
                    outgoing,
                    "The account has no SMTP server any more."
                    if not account.has_smtp
                    else "The stored SMTP login cannot be used; reconnect the account.",
                )
                return None
            outgoing.attempts += 1
            envelope = envelope_recipients(
                [*outgoing.to_addresses, *outgoing.cc_addresses, *outgoing.bcc_addresses]
            )
            return Attempt(
                login=login,
                sender=outgoing.from_address,
                recipients=envelope,
                mime=outgoing.mime,
                utf8=needs_smtputf8([outgoing.from_address, *envelope]),
                attempts=outgoing.attempts,
            )

    async def _transmit(self, attempt: Attempt) -> float | None:
        try:
            refused = await self._smtp_transaction(attempt)
        except TemporaryFailure as failure:
            return await self._after_temporary_failure(attempt, str(failure))
        except PermanentFailure as failure:
            await self._finish_failed(str(failure))
            return None
        note = None
        if refused:
            note = "Not accepted for " + "; ".join(f"{a} ({r})" for a, r in refused.items())
        await self._finish_sent(note)
        return None

    async def _smtp_transaction(self, attempt: Attempt) -> dict[str, str]:
        """MAIL, RCPT, then DATA after recording that DATA started; the refused recipients."""
        data_started = False
        try:
            async with smtp_session(attempt.login, self.runtime.mail_options) as client:
                options = ["SMTPUTF8"] if attempt.utf8 else []
                encoding = "utf-8" if attempt.utf8 else "ascii"
                await client.mail(attempt.sender, options=options, encoding=encoding)
                refused: dict[str, tuple[int, str]] = {}
                for recipient in attempt.recipients:
                    try:
                        await client.rcpt(recipient, encoding=encoding)
                    except aiosmtplib.SMTPRecipientRefused as exc:
                        refused[recipient] = (exc.code, exc.message)
                if len(refused) == len(attempt.recipients):
                    codes = [code for code, _ in refused.values()]
                    reply = _reply_text(*next(iter(refused.values())))
                    reason = f"No recipient was accepted: {reply}."
                    if any(400 <= code < 500 for code in codes):
                        raise TemporaryFailure(reason)
                    raise PermanentFailure(reason)
                await self._mark_data_started(True)
                data_started = True
                await client.data(attempt.mime)
                return {a: _reply_text(*r) for a, r in refused.items()}
        except ServiceError as error:
            if isinstance(error, SignInExpired):
                raise PermanentFailure(error.message) from None
            if error.code is ErrorCode.INVALID_CREDENTIALS:
                raise PermanentFailure(
                    "The SMTP server refused the stored login; reconnect the account."
                ) from None
            if error.code is ErrorCode.SERVER_UNREACHABLE:
                raise TemporaryFailure(error.message) from None
            raise PermanentFailure(error.message) from None
        except aiosmtplib.SMTPResponseException as exc:
            if data_started:
                await self._mark_data_started(False)  # a definite "no": nothing was taken
            reason = f"The SMTP server answered {_reply_text(exc.code, exc.message)}."
            if 400 <= exc.code < 500:
                raise TemporaryFailure(reason) from None
            raise PermanentFailure(reason) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if data_started:
                raise PermanentFailure(UNCERTAIN) from None
            log.warning("outgoing %s: SMTP fault %s", self.outgoing_id, type(exc).__name__)
            raise TemporaryFailure("The connection to the SMTP server failed.") from None

    async def _mark_data_started(self, started: bool) -> None:
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is not None:
                outgoing.smtp_data_started_at = datetime.now(UTC) if started else None

    async def _after_temporary_failure(self, attempt: Attempt, reason: str) -> float | None:
        settings = self.runtime.settings
        if attempt.attempts >= settings.send_max_attempts:
            await self._finish_failed(f"Gave up after {attempt.attempts} attempts. {reason}")
            return None
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is None:
                return None
            outgoing.error = f"{reason} Trying again."
            announce_change(session, self.runtime, outgoing)
        metrics.SENDS.labels("retry").inc()
        delay = settings.send_retry_seconds * 2 ** (attempt.attempts - 1)
        return float(min(delay, MAX_RETRY_DELAY_SECONDS))

    def _fail(self, session: AsyncSession, outgoing: OutgoingMessage, reason: str) -> None:
        outgoing.status = SendStatus.FAILED
        outgoing.error = reason
        _discard_content(outgoing)
        announce_change(session, self.runtime, outgoing)
        metrics.SENDS.labels("failed").inc()

    async def _finish_failed(self, reason: str) -> None:
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is not None:
                self._fail(session, outgoing, reason)

    async def _finish_sent(self, note: str | None) -> None:
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is None:
                return
            outgoing.status = SendStatus.SENT
            outgoing.sent_at = datetime.now(UTC)
            outgoing.error = note
            announce_change(session, self.runtime, outgoing)
        metrics.SENDS.labels("sent").inc()

    # -- the Sent folder -------------------------------------------------------------------

    async def _sent_copy_task(self) -> SentCopyTask | None:
        """What to append where; None when no copy is due (recording why)."""
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if (
                outgoing is None
                or outgoing.status is not SendStatus.SENT
                or outgoing.sent_copy is not SentCopy.PENDING
            ):
                return None
            account = (
                await accounts.get(session, outgoing.account_id) if outgoing.account_id else None
            )
            folder = await repository.sent_folder(session, account.id) if account else None
            if account is not None and _sends_own_copy(account):
                outgoing.sent_copy = SentCopy.BY_SERVER
                _discard_content(outgoing)
                return None
            if account is None or folder is None:
                outgoing.sent_copy = SentCopy.NO_FOLDER
                _discard_content(outgoing)
                return None
            try:
                login = stored_imap_login(self.runtime, account)
            except DecryptionError:
                outgoing.sent_copy = SentCopy.FAILED
                _discard_content(outgoing)
                return None
            return SentCopyTask(
                login=login,
                folder=folder.name,
                mime=outgoing.mime,
                message_id=outgoing.message_id,
                sent_at=outgoing.sent_at or datetime.now(UTC),
                account_id=account.id,
                sync_after=folder.selected and account.status in RUNNING,
            )

    async def _file_sent_copy(self) -> None:
        task = await self._sent_copy_task()
        if task is None:
            return
        outcome = SentCopy.APPENDED
        try:
            async with imap_session(task.login, self.runtime.mail_options) as imap:
                await imap.append_unless_present(
                    task.folder, task.mime, task.message_id, task.sent_at
                )
        except (ServiceError, aioimaplib.AioImapException, OSError, TimeoutError) as exc:
            log.warning("outgoing %s: no copy in Sent (%s)", self.outgoing_id, type(exc).__name__)
            permanent = isinstance(exc, ServiceError) and exc.code in _PERMANENT_COPY_ERRORS
            expired = datetime.now(UTC) - task.sent_at > SENT_COPY_RETRY_WINDOW
            # A passing fault (network, server busy, over quota) leaves the copy due: the
            # requeue cron tries again once the row has rested REQUEUE_AFTER, for a day.
            outcome = SentCopy.FAILED if permanent or expired else SentCopy.PENDING
        async with session_scope(self.sessions) as session:
            outgoing = await repository.lock_outgoing(session, self.outgoing_id)
            if outgoing is not None:
                outgoing.sent_copy = outcome
                outgoing.updated_at = datetime.now(UTC)  # the requeue clock starts again
                if outcome is not SentCopy.PENDING:
                    _discard_content(outgoing)
        if outcome is SentCopy.APPENDED and task.sync_after:
            async with session_scope(self.sessions) as session:
                await request_syncs(session, self.runtime.jobs, [task.account_id])
