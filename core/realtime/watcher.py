"""One account's IDLE watcher: a connection in IDLE on INBOX that asks for a sync of INBOX
when the server pushes a change, and comes back after faults.

A watcher is one socket and one task that sleeps on it: nothing runs while nothing
arrives (but the re-IDLE every ``idle_renew_seconds``). It holds no database connection
while it waits on the server; each database step is a short transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass

import aioimaplib
from sqlalchemy.exc import SQLAlchemyError

from core.accounts import repository as accounts
from core.accounts.logins import stored_imap_login
from core.accounts.status import RUNNING
from core.crypto import DecryptionError
from core.db import session_scope
from core.errors import ServiceError
from core.mail.idle import IdleConnection, IdleConnectionLost, InboxState
from core.mail.imap import open_connection
from core.mail.mailbox import ImapCommandError
from core.mail.server import ServerLogin
from core.realtime import leases
from core.runtime import Runtime
from core.sync.requests import request_folder_sync
from core.sync.run import failure_of, record_failure

log = logging.getLogger(__name__)

INBOX = "INBOX"
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 300.0


class _Lost(Exception):
    """This connection is over (logged already): reconnect after a delay."""


_DATABASE_FAULTS = (SQLAlchemyError, OSError, asyncio.TimeoutError)
_FAULTS = (
    ServiceError,
    ImapCommandError,
    IdleConnectionLost,
    aioimaplib.AioImapException,
    OSError,
    TimeoutError,
)


def retry_delay(failures: int) -> float:
    """Seconds before reconnecting after ``failures`` faults in a row: 0.5, 1, 2... up to
    five minutes, each +-25 % so that watchers of one server do not come back together."""
    delay = min(FIRST_RETRY_SECONDS * (1 << min(max(failures - 1, 0), 16)), MAX_RETRY_SECONDS)
    return delay * random.uniform(0.75, 1.25)  # noqa: S311  # spreads retries, not crypto


def changed_since(server: InboxState, stored: InboxState | None) -> bool:
    """Whether INBOX may hold changes the last sync did not see (then a sync is asked for:
    mail that came while no watcher was connected is not missed)."""
    if stored is None or stored.uidvalidity is None:
        return True
    pairs = [
        (server.uidvalidity, stored.uidvalidity),
        (server.uidnext, stored.uidnext),
        (server.exists, stored.exists),
    ]
    if server.highest_modseq is not None:
        pairs.append((server.highest_modseq, stored.highest_modseq))
    return any(now is None or now != then for now, then in pairs)


@dataclass(frozen=True)
class _Start:
    login: ServerLogin
    stored: InboxState | None


class InboxWatcher:
    """Watches one account until cancelled, or until there is nothing to watch (the server
    offers no IDLE, the login is refused, the account stopped syncing)."""

    def __init__(
        self,
        runtime: Runtime,
        account_id: uuid.UUID,
        worker_id: str,
        gate: asyncio.Semaphore | None = None,
    ) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.worker_id = worker_id
        # Shared by a worker's watchers: how many may be logging in at once (a worker that
        # starts, or takes over hundreds, does not knock on the servers all together).
        self.gate = gate or asyncio.Semaphore(1)
        self.inbox = INBOX  # the stored name of the folder (servers may spell it "Inbox")
        self._pending: asyncio.TimerHandle | None = None
        self._asking: set[asyncio.Task[None]] = set()
        self.pushes = 0
        self.failures = 0  # faults in a row, for the reconnect delay

    async def run(self) -> None:
        try:
            while True:
                try:
                    if not await self._connect_and_watch():
                        return
                except _DATABASE_FAULTS as error:  # PostgreSQL busy or away: try again later
                    log.info(
                        "account %s: IDLE watcher: database fault (%s)", self.account_id, error
                    )
                except _Lost:
                    pass
                self.failures += 1
                with contextlib.suppress(*_DATABASE_FAULTS):
                    await self._mark_established(False)
                await asyncio.sleep(retry_delay(self.failures))
        finally:
            if self._pending is not None:
                self._pending.cancel()

    async def _connect_and_watch(self) -> bool:
        """One connection's life; False when there is nothing to watch any more. Up to
        IDLE, it runs under the worker's gate (database reads, login, SELECT)."""
        settings = self.runtime.settings
        async with self.gate:
            start = await self._start()
            if start is None:
                return False
            try:
                connection = await open_connection(start.login, self.runtime.mail_options)
            except (*_FAULTS, DecryptionError) as error:
                if failure_of(error).auth:
                    log.warning("account %s: IDLE login refused; watcher stops", self.account_id)
                    await record_failure(self.runtime, self.account_id, error)
                    return False
                log.info("account %s: IDLE connect failed (%s)", self.account_id, error)
                raise _Lost from error
            idle = IdleConnection(connection, settings.idle_answer_seconds)
            try:
                if not idle.offers_idle:
                    await self._mark_without_idle()
                    log.info("account %s: the server offers no IDLE; polling", self.account_id)
                    idle.close()
                    return False
                state = await idle.select_inbox()
                await self._mark_established(True)
            except _FAULTS as error:
                idle.close()
                log.info("account %s: IDLE SELECT failed (%s)", self.account_id, error)
                raise _Lost from error
            except BaseException:
                idle.close()
                raise
        try:
            if changed_since(state, start.stored):
                self._pushed()
            if self.failures:
                log.info("account %s: IDLE watcher reconnected", self.account_id)
            self.failures = 0
            await idle.watch(self._pushed, renew_after=settings.idle_renew_seconds)
        except _FAULTS as error:
            log.info("account %s: IDLE connection lost (%s)", self.account_id, error)
            raise _Lost from error
        finally:
            idle.close()
        return True

    async def _start(self) -> _Start | None:
        async with self.runtime.session_factory() as session:
            account = await accounts.get(session, self.account_id)
            if account is None or account.status not in RUNNING:
                return None
            try:
                login: ServerLogin | DecryptionError = stored_imap_login(self.runtime, account)
            except DecryptionError as error:
                login = error
            stored = await leases.stored_inbox(session, self.account_id)
        if isinstance(login, DecryptionError):
            await record_failure(self.runtime, self.account_id, login)
            return None
        if stored is not None:
            self.inbox = stored[0]
        return _Start(login, stored[1] if stored is not None else None)

    async def _mark_established(self, established: bool) -> None:
        async with session_scope(self.runtime.session_factory) as session:
            await leases.mark_established(session, self.worker_id, self.account_id, established)

    async def _mark_without_idle(self) -> None:
        async with session_scope(self.runtime.session_factory) as session:
            await leases.mark_without_idle(session, self.worker_id, self.account_id)

    def _pushed(self) -> None:
        """A change on the server: one sync request per burst (debounced)."""
        self.pushes += 1
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(
                self.runtime.settings.idle_debounce_seconds, self._ask_soon
            )

    def _ask_soon(self) -> None:
        self._pending = None
        task = asyncio.get_running_loop().create_task(self._ask())
        self._asking.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._asking.discard)

    async def _ask(self) -> None:
        try:
            await request_folder_sync(
                self.runtime.session_factory, self.runtime.jobs, self.account_id, [self.inbox]
            )
        except Exception:
            # PostgreSQL or Redis blipped: ask again in a second (the push is not lost).
            log.warning("account %s: could not ask for a sync; retrying", self.account_id)
            self._pending = asyncio.get_running_loop().call_later(1.0, self._ask_soon)
