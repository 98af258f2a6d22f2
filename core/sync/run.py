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

from core.accounts import repository as accounts
from core.accounts.folders import apply_server_folders
from core.accounts.logins import stored_imap_login
from core.accounts.status import ACTIVE, AUTH_FAILED, ERROR, RUNNING, SYNCING, transition
from core.crypto import DecryptionError
from core.db import session_scope
from core.errors import ErrorCode, ServiceError
from core.events import Event, SyncCompleted, SyncProgress
from core.mail.imap import Mailbox, imap_session
from core.mail.mailbox import ImapCommandError, MailboxOps
from core.mail.server import ServerLogin
from core.models import PastSync
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
class RunResult:
    account_id: uuid.UUID
    initial: bool
    counts: SyncCounts
    started_at: datetime
    finished_at: datetime


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

    async def _publish(self, owner_id: uuid.UUID, event: Event) -> None:
        await announce_now(self.runtime.events, owner_id, event)

    async def run(self) -> RunResult | None:
        """Sync the account if it is due to sync; None when there was nothing to do."""
        async with account_lock(self.runtime, self.account_id) as acquired:
            if not acquired:
                log.info("account %s is being synced by another worker", self.account_id)
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
            transition(session, self.runtime.events, account, SYNCING)
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
                if self.only is not None:
                    folders = [f for f in folders if f.name in self.only]
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

    async def _refresh_folders(
        self, mailboxes: list[Mailbox]
    ) -> tuple[int, list[FolderCheckpoint]]:
        """Apply folders created or deleted on the server since the last run; the number of
        stored messages that left with deleted synced folders, and the folders to sync."""
        async with session_scope(self.runtime.session_factory) as session:
            folders = await repository.folders(session, self.account_id)
            if {f.name for f in folders} == {m.name for m in mailboxes}:  # the common case
                return 0, [FolderCheckpoint.of(f) for f in folders if f.selected]
            account = await accounts.get(session, self.account_id, lock=True)
            if account is None:
                return 0, []
            refresh = await apply_server_folders(session, account, mailboxes)
            selected = await repository.selected_checkpoints(session, self.account_id)
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
            if initial:
                account.initial_sync_pending = False
            if account.status is SYNCING:  # not if paused meanwhile
                transition(session, self.runtime.events, account, ACTIVE)

    async def _fail(self, message: str, *, auth: bool) -> None:
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
            if account.status in RUNNING:  # not if paused meanwhile
                transition(session, self.runtime.events, account, AUTH_FAILED if auth else ERROR)
