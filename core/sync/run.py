"""One sync run of one account: claim, status, folders, errors and backoff, events.

The entry point of the sync engine for every caller (the arq job, benchmarks, tests):
``workers/`` only adapts arq to :func:`sync_account`. Safe to run twice at once or again
after a crash: a claim on the account's row (core/sync/claims.py) lets one run per
account proceed, and every folder step is idempotent.
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
from core.inbox import counts
from core.mail.imap import ImapConnection, Mailbox, imap_session
from core.mail.mailbox import ImapCommandError, MailboxOps
from core.mail.protocol import MailServerLimitExceeded
from core.mail.server import ServerLogin
from core.models import Folder, MailAccount, PastSync
from core.moves.write_back import push_local_moves
from core.notifications import announce_now
from core.oauth.tokens import SignInExpired
from core.runtime import Runtime
from core.settings import Settings
from core.sync import analyze, claims, repository, search_index
from core.sync.flag_push import push_local_flags
from core.sync.folder import AccountContext, FolderSync, SyncCounts, SyncTuning
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


def failure_of(error: BaseException, mail_timeout: float | None = None) -> Failure:
    """``mail_timeout``: the bound on each command (said in the message of a timeout)."""
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
    if isinstance(error, MailServerLimitExceeded):
        return Failure("MAIL_SERVER_LIMIT", error.message)
    if isinstance(error, ImapCommandError):
        return Failure("IMAP_COMMAND_REFUSED", f"The mail server answered an error: {error}.")
    if isinstance(error, TimeoutError | aioimaplib.CommandTimeout):
        within = f" (no reply within {mail_timeout:g} s)" if mail_timeout else ""
        return Failure("TIMEOUT", f"The mail server stopped answering{within}; retrying later.")
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
        max_message_bytes=settings.max_message_bytes,
    )


async def sync_account(
    runtime: Runtime,
    account_id: uuid.UUID,
    tuning: SyncTuning,
    *,
    folders: Collection[str] | None = None,
    due_at: datetime | None = None,
) -> RunResult | None:
    """One sync run of the account, if its status lets it sync; None when there was nothing
    to do (paused, removed, waiting for a new password) or another worker holds it.

    ``folders``: only these of its selected folders (names), e.g. the one an IDLE watcher
    heard about. Such a run writes back and syncs just those, and leaves the account's
    schedule (``next_sync_at``, the pending initial sync) to the full runs.
    """
    return await AccountSyncRun(runtime, account_id, tuning, folders=folders, due_at=due_at).run()


async def record_failure(runtime: Runtime, account_id: uuid.UUID, error: BaseException) -> None:
    """Record a fault met outside a run (an IDLE watcher's login) as a run would have:
    lastError, backoff, and the status (AUTH_FAILED for a refused login)."""
    await AccountSyncRun(runtime, account_id, tuning_for(runtime.settings))._fail(failure_of(error))


def next_period(due_at: datetime | None, started: datetime, interval: timedelta) -> datetime:
    """When the account is next due after a run that succeeded: an interval after the time
    this run was due when it started on time (within a tenth of the interval), so the
    period does not drift by the length of runs or queueing; else an interval after it
    started (asked for out of schedule, or late: a backlog is not made worse by runs
    queued back to back)."""
    if due_at is not None and started - due_at <= interval / 10:
        return due_at + interval
    return started + interval


def backoff(failures: int, base: timedelta) -> timedelta:
    """Exponential backoff with jitter: base, 2x, 4x... each +-50 %, and never past an hour
    (the delay before jitter stops at 40 minutes, so capped retries still spread out)."""
    ceiling = MAX_BACKOFF / 1.5
    delay = min(base * (1 << min(max(failures - 1, 0), 32)), ceiling)
    jitter = random.uniform(0.5, 1.5)  # noqa: S311  # spreads retries, not cryptography
    return min(delay * jitter, MAX_BACKOFF)


@dataclass(frozen=True)
class Begun:
    """What the first transaction of a run read, with the claim taken."""

    context: AccountContext
    login: ServerLogin
    initial: bool
    folders: list[tuple[Folder, int]]  # with their stored counts (repository.folders)
    pending: repository.PendingWork


class AccountSyncRun:
    """One run. Its database work is a few short transactions, each on one pooled
    connection and none held while the mail server is asked anything: a run that finds
    nothing changed costs two (the claim with what the run needs to know, and the closing
    write), and changes the status only on a real transition (README, "Running at scale")."""

    def __init__(
        self,
        runtime: Runtime,
        account_id: uuid.UUID,
        tuning: SyncTuning,
        *,
        folders: Collection[str] | None = None,
        due_at: datetime | None = None,
    ) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.tuning = tuning
        self.only = frozenset(folders) if folders is not None else None
        self.due_at = due_at  # when the scheduler found it due (the lag metric)
        self.token = uuid.uuid4()  # this run's claim on the account (core/sync/claims.py)
        self.claimed = False
        self.folder: str | None = None  # the folder being synced, for the failure's log line
        self.requested_at: datetime | None = None  # sync_requested_at when the run began
        self.again = False
        self.note: str | None = None  # for the user (lastError) although the run succeeds

    async def _publish(self, owner_id: uuid.UUID, event: Event) -> None:
        await announce_now(self.runtime.events, owner_id, event)

    async def run(self) -> RunResult | None:
        """Sync the account if it is due to sync; None when there was nothing to do."""
        sessions = self.runtime.session_factory
        try:
            begun = await self._begin()
        except DecryptionError as error:
            await self._fail(failure_of(error))
            return None
        if begun is None:
            log.debug("account %s: not syncing, or another run holds it", self.account_id)
            return None
        self.claimed = True
        try:
            async with claims.renewing(sessions, self.account_id, self.token):
                result = await self._run_claimed(begun)
        finally:
            if self.claimed:  # ended without its closing write (paused meanwhile, cancelled)
                try:
                    await claims.release_claim(sessions, self.account_id, self.token)
                except Exception:  # it runs out by itself in core.claims.CLAIM_SECONDS
                    log.warning("account %s: releasing the sync claim failed", self.account_id)
        if result is not None and (result.counts.search_deferred or begun.pending.search):
            await self._catch_up_search()
        if result is not None and result.counts.search_deferred:  # rows stored in bulk
            await self._refresh_statistics(result.counts.new)
        wrote_back = begun.pending.flags or begun.pending.moves  # marks: rows changed
        if result is not None and (result.counts.changed_rows or wrote_back):
            await self._compact_changes()
        return result

    async def _compact_changes(self) -> None:
        """The change rows this run (and the marks it wrote back) appended, folded into one
        per folder (core/inbox/counts.py). A failure leaves them for the next run."""
        try:
            async with session_scope(self.runtime.session_factory) as session:
                await counts.compact(session, self.account_id)
        except Exception:
            log.warning("account %s: compacting folder changes failed", self.account_id)

    async def _refresh_statistics(self, stored: int) -> None:
        """After a bulk sync, with the claim released: the planner's statistics of what it
        filled, which the new mailbox's first pages are planned from (core/sync/analyze.py).
        A failure leaves them to autovacuum."""
        try:
            await analyze.refresh_after_bulk_sync(self.runtime.session_factory, stored)
        except Exception:
            log.warning("refreshing planner statistics failed", exc_info=True)

    async def _catch_up_search(self) -> None:
        """After syncCompleted and with the claim released: the mail is in the inbox, and
        the account's next run need not wait for its search vectors. A failure leaves the
        rows waiting (search still finds them) for the next run."""
        try:
            await search_index.catch_up(self.runtime.session_factory, self.account_id)
        except Exception:
            log.warning(
                "account %s: filling search vectors failed; the next run retries",
                self.account_id,
                exc_info=True,
            )

    async def _begin(self) -> Begun | None:
        """Claim the account and read what the run needs: one transaction, three statements
        (four on an initial run, which shows SYNCING)."""
        async with session_scope(self.runtime.session_factory) as session:
            account = await repository.claim_account(session, self.account_id, self.token)
            if account is None:
                return None  # removed, paused, waiting for a new password, or held
            context = AccountContext(
                account.id, account.owner_id, account.past_sync or PastSync.ONE_MONTH
            )
            login = stored_imap_login(self.runtime, account)
            initial = account.initial_sync_pending and self.only is None
            self.requested_at = account.sync_requested_at
            due = self.due_at or (account.next_sync_at if self.only is None else None)
            if due is not None:
                metrics.SYNC_LAG.observe(max((datetime.now(UTC) - due).total_seconds(), 0.0))
            if initial:  # a later run shows no SYNCING: its account stays ACTIVE throughout
                transition(session, self.runtime.events, account, SYNCING)
            folders = await repository.folders(session, self.account_id)
            pending = await repository.pending_work(session, self.account_id)
        return Begun(context, login, initial, folders, pending)

    async def _run_claimed(self, begun: Begun) -> RunResult | None:
        context, initial = begun.context, begun.initial
        started = datetime.now(UTC)
        counts = SyncCounts()

        async def progress(folder: str, fetched: int, total: int) -> None:
            await self._publish(
                context.owner_id,
                SyncProgress(
                    account_id=self.account_id, folder=folder, fetched=fetched, total=total
                ),
            )

        sessions = self.runtime.session_factory
        try:
            async with imap_session(begun.login, self.runtime.mail_options) as connection:
                ops = MailboxOps(connection)
                await ops.enable_extensions()
                if self.only is None:
                    folders = await self._list_folders(connection, ops, begun, counts)
                else:  # a push about a folder we sync: no LIST (the full runs follow it)
                    folders = [
                        FolderCheckpoint.of(f, stored)
                        for f, stored in begun.folders
                        if f.selected and f.name in self.only
                    ]
                if begun.pending.flags:
                    await push_local_flags(sessions, ops, self.account_id, folders)
                if begun.pending.moves:
                    await push_local_moves(sessions, ops, self.account_id)
                for position, folder in enumerate(folders):
                    if position and not await self._still_wanted():
                        return None  # paused or removed meanwhile: stop between folders
                    self.folder = folder.name
                    folder_counts = await FolderSync(
                        sessions, ops, context, folder, self.tuning, progress
                    ).run()
                    counts.add(folder_counts)
                self.folder = None
        except _FAULTS as error:
            await self._fail(failure_of(error, self.runtime.settings.mail_timeout_seconds))
            return None
        finished = datetime.now(UTC)
        await self._succeed(initial, started)
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

    async def _list_folders(
        self, connection: ImapConnection, ops: MailboxOps, begun: Begun, counts: SyncCounts
    ) -> list[FolderCheckpoint]:
        mailboxes = await connection.list_mailboxes()
        if connection.folders_ignored:
            self.note = (
                f"The mail server lists {len(mailboxes) + connection.folders_ignored:,} "
                f"folders; only the first {len(mailboxes):,} are synced or shown, the "
                "rest are ignored."
            )
        removed, folders = await self._refresh_folders(ops, begun.folders, mailboxes)
        counts.removed += removed
        return folders

    async def _refresh_folders(
        self, ops: MailboxOps, stored: list[tuple[Folder, int]], mailboxes: list[Mailbox]
    ) -> tuple[int, list[FolderCheckpoint]]:
        """Apply folders created, renamed or deleted on the server since the last run; the
        number of stored messages that left with deleted synced folders, and the folders to
        sync. The server is asked about possible renames before the account is locked."""
        if {f.name for f, _ in stored} == {m.name for m in mailboxes}:  # the common case
            return 0, [FolderCheckpoint.of(f, count) for f, count in stored if f.selected]
        known = [StoredFolder.of(f) for f, _ in stored]
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
        return account is not None and account.status in RUNNING

    async def _succeed(self, initial: bool, started: datetime) -> None:
        """The closing write: one transaction, three statements (the row locked, pending
        marks looked for, the row written), the claim cleared in it."""
        now = datetime.now(UTC)
        interval = timedelta(seconds=self.runtime.settings.sync_interval_seconds)
        async with session_scope(self.runtime.session_factory) as session:
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None:
                return
            self._release(account)
            if self.only is None or account.status is ERROR:  # a push run lists nothing
                account.last_error = self.note
            account.consecutive_failures = 0
            if self.only is None:  # a run of some folders leaves the schedule as it is
                account.last_synced_at = now
                account.next_sync_at = next_period(self.due_at, started, interval)
            if await repository.has_pending_flags(session, self.account_id):
                account.next_sync_at = now  # marked during this run: write them back soon
            self._again_if_asked(account, now)
            if initial:
                account.initial_sync_pending = False
            if account.status in (SYNCING, ERROR):  # not if paused meanwhile
                transition(session, self.runtime.events, account, ACTIVE)

    def _release(self, account: MailAccount) -> None:
        claims.release(account, self.token)
        self.claimed = False

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
            self._release(account)
            account.last_error = message
            account.consecutive_failures += 1
            account.next_sync_at = (
                None if auth else now + backoff(account.consecutive_failures, base)
            )
            if not auth:
                self._again_if_asked(account, now)
            if account.status in RUNNING:  # not if paused meanwhile
                transition(session, self.runtime.events, account, AUTH_FAILED if auth else ERROR)
