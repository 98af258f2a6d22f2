"""One sync run of one account: lock, status, folders, errors and backoff, events.

The entry point of the sync engine for every caller (the arq job, benchmarks, tests):
``workers/`` only adapts arq to :func:`sync_account`. Safe to run twice at once or again
after a crash: a PostgreSQL advisory lock lets one run per account proceed, and every
folder step is idempotent.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aioimaplib

from core import metrics
from core.accounts import repository as accounts
from core.accounts.folders import StoredFolder, apply_server_folders, folder_statuses
from core.accounts.logins import stored_imap_login
from core.accounts.status import ACTIVE, AUTH_FAILED, ERROR, RUNNING, SYNCING, transition
from core.crypto import DecryptionError
from core.db import session_scope
from core.errors import ErrorCode, ServiceError
from core.events import Event, SyncCompleted, SyncProgress
from core.mail.imap import Mailbox, imap_session
from core.mail.mailbox import ImapCommandError, MailboxOps
from core.mail.server import ServerLogin
from core.models import MailAccount, PastSync
from core.moves.write_back import push_local_moves
from core.notifications import announce_now
from core.oauth.tokens import SignInExpired
from core.runtime import Runtime
from core.settings import Settings
from core.sync import repository
from core.sync.flag_push import push_local_flags
from core.sync.folder import AccountContext, FolderSync, SyncCounts, SyncTuning
from core.sync.locks import account_lock
from core.sync.parse_pool import INLINE, MessageParser
from core.sync.repository import FolderCheckpoint

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
AUTH_FAILED_MESSAGE = "The mail server refused the stored login; reconnect the account."


@dataclass(frozen=True)
class Failure:
    """Why a run failed: ``code`` for logs and metrics (an ErrorCode, or the kind of
    fault), ``message`` for the user (``lastError``, never a secret), ``auth`` when only
    a new password helps (no retry)."""

    code: str
    message: str
    auth: bool = False


def failure_of(error: BaseException) -> Failure:
    if isinstance(error, DecryptionError):
        return Failure(
            "CREDENTIALS_UNREADABLE",
            "The stored password cannot be decrypted; reconnect the account.",
            auth=True,
        )
    if isinstance(error, ServiceError):
        if error.code is ErrorCode.INVALID_CREDENTIALS:
            # An expired OAuth2 sign-in says so (and to sign in again); a password doesn't.
            message = error.message if isinstance(error, SignInExpired) else AUTH_FAILED_MESSAGE
            return Failure(error.code.value, message, auth=True)
        return Failure(error.code.value, error.message)
    if isinstance(error, ImapCommandError):
        return Failure("IMAP_COMMAND_REFUSED", f"The mail server answered an error: {error}.")
    if isinstance(error, TimeoutError):
        return Failure("TIMEOUT", "The mail server did not answer in time; retrying later.")
    return Failure("CONNECTION_FAILED", "The connection to the mail server failed; retrying later.")


_FAULTS = (
    DecryptionError,
    ServiceError,
    ImapCommandError,
    aioimaplib.AioImapException,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class RunResult:
    account_id: uuid.UUID
    initial: bool
    counts: SyncCounts
    started_at: datetime
    finished_at: datetime
    again: bool = False  # a sync was asked for during this run: queue one now


def tuning_for(settings: Settings, parser: MessageParser = INLINE) -> SyncTuning:
    return SyncTuning(
        full_flag_scan_every=timedelta(seconds=settings.flag_scan_interval_seconds),
        parser=parser,
    )


async def sync_account(
    runtime: Runtime,
    account_id: uuid.UUID,
    tuning: SyncTuning,
    *,
    folders: Collection[str] | None = None,
) -> RunResult | None:
    """One sync run of the account, if its status lets it sync; None when there was nothing
    to do (paused, removed, waiting for a new password) or another worker holds it.

    ``folders``: only these of its selected folders (names), e.g. the one an IDLE watcher
    heard about. Such a run writes back and syncs just those, and leaves the account's
    schedule (``next_sync_at``, the pending initial sync) to the full runs.
    """
    return await AccountSyncRun(runtime, account_id, tuning, folders=folders).run()


async def record_failure(runtime: Runtime, account_id: uuid.UUID, error: BaseException) -> None:
    """Record a fault met outside a run (an IDLE watcher's login) as a run would have:
    lastError, backoff, and the status (AUTH_FAILED for a refused login)."""
    await AccountSyncRun(runtime, account_id, tuning_for(runtime.settings))._fail(failure_of(error))


def backoff(failures: int, base: timedelta) -> timedelta:
    """Exponential backoff with jitter: base, 2x, 4x... each +-50 %, and never past an hour
    (the delay before jitter stops at 40 minutes, so capped retries still spread out)."""
    ceiling = MAX_BACKOFF / 1.5
    delay = min(base * (1 << min(max(failures - 1, 0), 32)), ceiling)
    jitter = random.uniform(0.5, 1.5)  # noqa: S311  # spreads retries, not cryptography
    return min(delay * jitter, MAX_BACKOFF)


class AccountSyncRun:
    def __init__(
        self,
        runtime: Runtime,
        account_id: uuid.UUID,
        tuning: SyncTuning,
        *,
        folders: Collection[str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.tuning = tuning
        self.only = frozenset(folders) if folders is not None else None
        self.folder: str | None = None  # the folder being synced, for the failure's log line
        self.requested_at: datetime | None = None  # sync_requested_at when the run began
        self.again = False

    async def _publish(self, owner_id: uuid.UUID, event: Event) -> None:
        await announce_now(self.runtime.events, owner_id, event)

    async def run(self) -> RunResult | None:
        """Sync the account if it is due to sync; None when there was nothing to do."""
        async with account_lock(self.runtime, self.account_id) as acquired:
            if not acquired:
                log.debug("account %s is being synced by another worker", self.account_id)
                return None
            return await self._run_locked()

    async def _begin(self) -> tuple[AccountContext, ServerLogin, bool] | None:
        async with session_scope(self.runtime.session_factory) as session:
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None or account.status not in RUNNING:
                return None  # removed, paused, waiting for a new password, or not started
            context = AccountContext(
                account.id, account.owner_id, account.past_sync or PastSync.ONE_MONTH
            )
            login = stored_imap_login(self.runtime, account)
            initial = account.initial_sync_pending and self.only is None
            self.requested_at = account.sync_requested_at
            if account.next_sync_at is not None and self.only is None:
                lag = (datetime.now(UTC) - account.next_sync_at).total_seconds()
                metrics.SYNC_LAG.observe(max(lag, 0.0))
            transition(session, self.runtime.events, account, SYNCING)
        return context, login, initial

    async def _run_locked(self) -> RunResult | None:
        try:
            begun = await self._begin()
        except DecryptionError as error:
            await self._fail(failure_of(error))
            return None
        if begun is None:
            return None
        context, login, initial = begun
        started = datetime.now(UTC)
        counts = SyncCounts()

        async def progress(folder: str, fetched: int, total: int) -> None:
            await self._publish(
                context.owner_id,
                SyncProgress(
                    account_id=self.account_id, folder=folder, fetched=fetched, total=total
                ),
            )

        try:
            async with imap_session(login, self.runtime.mail_options) as connection:
                ops = MailboxOps(connection)
                await ops.enable_extensions()
                removed, folders = await self._refresh_folders(
                    ops, await connection.list_mailboxes()
                )
                counts.removed += removed
                if self.only is not None:
                    folders = [f for f in folders if f.name in self.only]
                await push_local_flags(self.runtime.session_factory, ops, self.account_id, folders)
                await push_local_moves(self.runtime.session_factory, ops, self.account_id)
                for position, folder in enumerate(folders):
                    if position and not await self._still_wanted():
                        return None  # paused or removed meanwhile: stop between folders
                    self.folder = folder.name
                    folder_counts = await FolderSync(
                        self.runtime.session_factory, ops, context, folder, self.tuning, progress
                    ).run()
                    counts.add(folder_counts)
                self.folder = None
        except _FAULTS as error:
            await self._fail(failure_of(error))
            return None
        finished = datetime.now(UTC)
        await self._succeed(initial)
        metrics.SYNC_RUNS.labels("ok").inc()
        metrics.SYNC_DURATION.observe((finished - started).total_seconds())
        metrics.MESSAGES_INGESTED.inc(counts.new)
        result = RunResult(self.account_id, initial, counts, started, finished, self.again)
        await self._publish(
            context.owner_id,
            SyncCompleted(
                account_id=self.account_id,
                initial=initial,
                new_messages=counts.new,
                updated_messages=counts.updated,
                removed_messages=counts.removed,
                started_at=started,
                finished_at=finished,
            ),
        )
        return result

    async def _refresh_folders(
        self, ops: MailboxOps, mailboxes: list[Mailbox]
    ) -> tuple[int, list[FolderCheckpoint]]:
        """Apply folders created, renamed or deleted on the server since the last run; the
        number of stored messages that left with deleted synced folders, and the folders to
        sync. The server is asked about possible renames before the account is locked."""
        async with self.runtime.session_factory() as session:
            folders = await repository.folders(session, self.account_id)
        if {f.name for f, _ in folders} == {m.name for m in mailboxes}:  # the common case
            return 0, [FolderCheckpoint.of(f, stored) for f, stored in folders if f.selected]
        known = [StoredFolder.of(f) for f, _ in folders]
        statuses = await folder_statuses(ops, known, mailboxes)
        async with session_scope(self.runtime.session_factory) as session:
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None:
                return 0, []
            refresh = await apply_server_folders(session, account, mailboxes, statuses)
            selected = await repository.selected_checkpoints(session, self.account_id)
        if refresh.renamed:
            log.info("account %s: synced folders renamed on the server", self.account_id)
        if refresh.dropped_selected:
            log.info("account %s: synced folders gone from the server", self.account_id)
        return refresh.dropped_messages, selected

    async def _still_wanted(self) -> bool:
        async with self.runtime.session_factory() as session:
            account = await accounts.get(session, self.account_id)
        return account is not None and account.status is SYNCING

    async def _succeed(self, initial: bool) -> None:
        now = datetime.now(UTC)
        interval = timedelta(seconds=self.runtime.settings.sync_interval_seconds)
        async with session_scope(self.runtime.session_factory) as session:
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None:
                return
            account.last_error = None
            account.consecutive_failures = 0
            if self.only is None:  # a run of some folders leaves the schedule as it is
                account.last_synced_at = now
                account.next_sync_at = now + interval
            if await repository.has_pending_flags(session, self.account_id):
                account.next_sync_at = now  # marked during this run: write them back soon
            self._again_if_asked(account, now)
            if initial:
                account.initial_sync_pending = False
            if account.status is SYNCING:  # not if paused meanwhile
                transition(session, self.runtime.events, account, ACTIVE)

    def _again_if_asked(self, account: MailAccount, now: datetime) -> None:
        """A sync asked for while this run was under way gets a run after it."""
        if account.sync_requested_at != self.requested_at:
            account.next_sync_at = now
            self.again = True

    async def _fail(self, failure: Failure) -> None:
        """Record the failure (lastError, backoff, status) and log one line about it."""
        log.warning(
            "sync failed: account=%s folder=%s code=%s message=%r",
            self.account_id,
            "-" if self.folder is None else repr(self.folder),
            failure.code,
            failure.message,
            extra={
                "account_id": str(self.account_id),
                "folder": self.folder,
                "error_code": failure.code,
                "error_message": failure.message,
            },
        )
        metrics.SYNC_RUNS.labels("failed").inc()
        metrics.IMAP_ERRORS.labels(failure.code).inc()
        message, auth = failure.message, failure.auth
        now = datetime.now(UTC)
        base = timedelta(seconds=self.runtime.settings.sync_interval_seconds)
        async with session_scope(self.runtime.session_factory) as session:
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None:
                return
            account.last_error = message
            account.consecutive_failures += 1
            account.next_sync_at = (
                None if auth else now + backoff(account.consecutive_failures, base)
            )
            if not auth:
                self._again_if_asked(account, now)
            if account.status in RUNNING:  # not if paused meanwhile
                transition(session, self.runtime.events, account, AUTH_FAILED if auth else ERROR)
