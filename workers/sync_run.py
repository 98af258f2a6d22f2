"""One sync run of one account: lock, status, folders, errors and backoff, events.

Safe to run twice at once or again after a crash: a PostgreSQL advisory lock lets one run
per account proceed, and every folder step is idempotent.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aioimaplib

from core.accounts import repository as account_repository
from core.accounts.service import AccountService
from core.crypto import DecryptionError
from core.db import session_scope
from core.errors import ErrorCode, ServiceError
from core.events import Event, SyncCompleted, SyncProgress
from core.mail.imap import Mailbox, imap_session
from core.mail.mailbox import ImapCommandError, MailboxOps
from core.mail.server import ServerLogin
from core.models import AccountStatus, Folder, PastSync
from core.oauth.tokens import SignInExpired
from core.runtime import Runtime
from core.sync import repository
from core.sync.flag_push import push_local_flags
from core.sync.folder import AccountContext, FolderSync, SyncCounts, SyncTuning
from core.sync.locks import account_lock

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
AUTH_FAILED_MESSAGE = "The mail server refused the stored login; reconnect the account."


@dataclass(frozen=True)
class RunResult:
    account_id: uuid.UUID
    initial: bool
    counts: SyncCounts
    started_at: datetime
    finished_at: datetime


def backoff(failures: int, base: timedelta) -> timedelta:
    """Exponential backoff with jitter: base, 2x, 4x... capped at an hour, +-50 %."""
    delay = min(base * 2 ** max(failures - 1, 0), MAX_BACKOFF)
    jitter = random.uniform(0.5, 1.5)  # noqa: S311  # spreads retries, not cryptography
    return timedelta(seconds=delay.total_seconds() * jitter)


class AccountSyncRun:
    def __init__(self, runtime: Runtime, account_id: uuid.UUID, tuning: SyncTuning) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.tuning = tuning

    async def _publish(self, owner_id: uuid.UUID, event: Event) -> None:
        try:
            await self.runtime.events.publish(owner_id, event)
        except Exception:  # a lost notification must not fail the sync
            log.warning("could not publish %s for account %s", event.kind, self.account_id)

    async def run(self) -> RunResult | None:
        """Sync the account if it is due to sync; None when there was nothing to do."""
        async with account_lock(self.runtime, self.account_id) as acquired:
            if not acquired:
                log.info("account %s is being synced by another worker", self.account_id)
                return None
            return await self._run_locked()

    async def _begin(self) -> tuple[AccountContext, ServerLogin, bool] | None:
        async with session_scope(self.runtime.session_factory) as session:
            account = await repository.lock_account(session, self.account_id)
            if account is None or account.status not in (
                AccountStatus.SYNCING,
                AccountStatus.ACTIVE,
                AccountStatus.ERROR,
            ):
                return None  # removed, paused, waiting for a new password, or not started
            context = AccountContext(
                account.id, account.owner_id, account.past_sync or PastSync.ONE_MONTH
            )
            login = AccountService(session, self.runtime).imap_login(account)
            initial = account.initial_sync_pending
            if account.status is not AccountStatus.SYNCING:
                account.status = AccountStatus.SYNCING
                AccountService(session, self.runtime).announce_status(account)
        return context, login, initial

    async def _run_locked(self) -> RunResult | None:
        try:
            begun = await self._begin()
        except DecryptionError:
            await self._fail(
                "The stored password cannot be decrypted; reconnect the account.", auth=True
            )
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
                removed, folders = await self._refresh_folders(await connection.list_mailboxes())
                counts.removed += removed
                await push_local_flags(self.runtime.session_factory, ops, self.account_id, folders)
                for position, folder in enumerate(folders):
                    if position and not await self._still_wanted():
                        return None  # paused or removed meanwhile: stop between folders
                    folder_counts = await FolderSync(
                        self.runtime.session_factory, ops, context, folder, self.tuning, progress
                    ).run()
                    counts.add(folder_counts)
        except ServiceError as error:
            auth = error.code is ErrorCode.INVALID_CREDENTIALS
            # An expired OAuth2 sign-in says so (and to sign in again); a password doesn't.
            generic = auth and not isinstance(error, SignInExpired)
            await self._fail(AUTH_FAILED_MESSAGE if generic else error.message, auth=auth)
            return None
        except (ImapCommandError, aioimaplib.AioImapException, OSError, TimeoutError) as error:
            log.warning("sync of account %s failed: %s", self.account_id, type(error).__name__)
            await self._fail(self._fault_message(error), auth=False)
            return None
        finished = datetime.now(UTC)
        await self._succeed(initial)
        result = RunResult(self.account_id, initial, counts, started, finished)
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

    @staticmethod
    def _fault_message(error: BaseException) -> str:
        if isinstance(error, ImapCommandError):
            return f"The mail server answered an error: {error}."
        if isinstance(error, TimeoutError):
            return "The mail server did not answer in time; retrying later."
        return "The connection to the mail server failed; retrying later."

    async def _refresh_folders(self, mailboxes: list[Mailbox]) -> tuple[int, list[Folder]]:
        """Apply folders created or deleted on the server since the last run; the number of
        stored messages that left with deleted synced folders, and the folders to sync."""
        async with session_scope(self.runtime.session_factory) as session:
            folders = await repository.folders(session, self.account_id)
            if {f.name for f in folders} == {m.name for m in mailboxes}:
                return 0, [f for f in folders if f.selected]  # the common case: one read
            account = await repository.lock_account(session, self.account_id)
            if account is None:
                return 0, []
            refresh = await account_repository.refresh_folders(session, account, mailboxes)
            selected = await repository.selected_folders(session, self.account_id)
        if refresh.dropped_selected:
            log.info("account %s: synced folders gone from the server", self.account_id)
        return refresh.dropped_messages, selected

    async def _still_wanted(self) -> bool:
        async with self.runtime.session_factory() as session:
            status = await repository.account_status(session, self.account_id)
        return status is AccountStatus.SYNCING

    async def _succeed(self, initial: bool) -> None:
        now = datetime.now(UTC)
        interval = timedelta(seconds=self.runtime.settings.sync_interval_seconds)
        async with session_scope(self.runtime.session_factory) as session:
            account = await repository.lock_account(session, self.account_id)
            if account is None:
                return
            account.last_synced_at = now
            account.last_error = None
            account.consecutive_failures = 0
            account.next_sync_at = now + interval
            if await repository.has_pending_flags(session, self.account_id):
                account.next_sync_at = now  # marked during this run: write them back soon
            if initial:
                account.initial_sync_pending = False
            if account.status is AccountStatus.SYNCING:  # not if paused meanwhile
                account.status = AccountStatus.ACTIVE
                AccountService(session, self.runtime).announce_status(account)

    async def _fail(self, message: str, *, auth: bool) -> None:
        now = datetime.now(UTC)
        base = timedelta(seconds=self.runtime.settings.sync_interval_seconds)
        async with session_scope(self.runtime.session_factory) as session:
            account = await repository.lock_account(session, self.account_id)
            if account is None:
                return
            account.last_error = message
            account.consecutive_failures += 1
            account.next_sync_at = (
                None if auth else now + backoff(account.consecutive_failures, base)
            )
            if account.status in (AccountStatus.SYNCING, AccountStatus.ACTIVE, AccountStatus.ERROR):
                account.status = AccountStatus.AUTH_FAILED if auth else AccountStatus.ERROR
                AccountService(session, self.runtime).announce_status(account)
