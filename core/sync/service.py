"""Starting, pausing, resuming and re-scoping sync: the rules behind the sync mutations.

Each use case changes rows, then enqueues the sync job after the commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import repository as account_repository
from core.accounts.service import AccountService
from core.accounts.status import PAUSABLE, RUNNING, transition
from core.errors import ErrorCode, ServiceError
from core.identity.viewer import Viewer
from core.mail.folders import sync_by_default
from core.models import AccountStatus, Folder, MailAccount, PastSync, PauseReason, Sharing
from core.runtime import Runtime
from core.sync import repository
from core.sync.requests import request_sync


def _not_ready(message: str) -> ServiceError:
    return ServiceError(ErrorCode.ACCOUNT_NOT_READY, message, "accountId")


def _folder_key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name  # RFC 3501: INBOX is case-insensitive


def choose_folders(folders: list[Folder], labels: list[str] | None) -> list[Folder]:
    """The folders named by ``labels`` (INBOX case-insensitively); null: INBOX + Sent."""
    if labels is None:
        return [f for f in folders if sync_by_default(f.role)]
    by_key = {_folder_key(f.name): f for f in folders}
    chosen: list[Folder] = []
    for label in labels:
        folder = by_key.get(_folder_key(label))
        if folder is None:
            raise ServiceError(
                ErrorCode.UNKNOWN_LABEL, f"The server has no folder named {label!r}.", "labels"
            )
        if folder not in chosen:
            chosen.append(folder)
    if not chosen:
        raise ServiceError(ErrorCode.INVALID_INPUT, "Choose at least one folder.", "labels")
    return chosen


class SyncService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.accounts = AccountService(session, runtime)

    def _set_status(self, account: MailAccount, status: AccountStatus) -> None:
        transition(self.session, self.runtime.events, account, status)

    async def learn_labels(
        self, viewer: Viewer, account_id: uuid.UUID | None, labels: list[str] | None
    ) -> None:
        """A label we do not know may be a folder made since we listed the server's: ask
        the server once. Call it first in the unit of work (it ends the transaction before
        talking to the server, so nothing is locked meanwhile); the use case that follows
        then finds the folder, or answers UNKNOWN_LABEL."""
        if labels is None or account_id is None:
            return
        account = await account_repository.get_owned(self.session, viewer.user_id, account_id)
        if account is None:
            return  # the use case answers NOT_FOUND or FORBIDDEN
        known = {
            _folder_key(f.name)
            for f in await account_repository.folders_of(self.session, [account.id])
        }
        if all(_folder_key(label) in known for label in labels):
            return
        await self.accounts.refresh_folders(viewer, account.id)

    async def _select(self, account: MailAccount, labels: list[str] | None) -> list[str]:
        folders = await account_repository.folders_of(self.session, [account.id])
        chosen = choose_folders(folders, labels)
        for folder in folders:
            if folder in chosen:
                folder.selected = True
            elif folder.selected:
                await repository.unselect_folder(self.session, folder)
        return [f.name for f in chosen]

    async def start(
        self,
        viewer: Viewer,
        account_id: uuid.UUID | None,
        *,
        sharing: Sharing,
        labels: list[str] | None,
        past_sync: PastSync,
    ) -> MailAccount:
        await self.learn_labels(viewer, account_id, labels)
        account = await self.accounts.owned_for_change(viewer, account_id)
        if account.status is not AccountStatus.READY:
            raise _not_ready(f"Sync can start only on a READY account (it is {account.status}).")
        account.labels = await self._select(account, labels)
        account.sharing = sharing
        account.past_sync = past_sync
        account.initial_sync_pending = True
        self._set_status(account, AccountStatus.SYNCING)
        request_sync(self.session, self.runtime.jobs, account)
        await self.session.flush()
        return account

    async def change_labels(self, account: MailAccount, labels: list[str]) -> None:
        """New folders are backfilled within the account's window; dropped ones leave."""
        if account.past_sync is None:
            raise ServiceError(
                ErrorCode.ACCOUNT_NOT_READY,
                "Choose the folders when you start syncing this account.",
                "labels",
            )
        account.labels = await self._select(account, labels)
        await self.session.flush()
        if account.status in RUNNING:
            request_sync(self.session, self.runtime.jobs, account)

    async def sync_now(self, viewer: Viewer, account_id: uuid.UUID | None) -> MailAccount:
        account = await self.accounts.owned_for_change(viewer, account_id)
        if account.status not in RUNNING:
            raise _not_ready(f"The account is {account.status}; it cannot sync now.")
        request_sync(self.session, self.runtime.jobs, account)
        await self.session.flush()
        return account

    async def pause(self, viewer: Viewer, account_id: uuid.UUID | None) -> MailAccount:
        account = await self.accounts.owned_for_change(viewer, account_id)
        if account.status is AccountStatus.PAUSED:
            return account
        if account.status not in PAUSABLE:
            raise _not_ready(f"The account is {account.status}; there is no sync to pause.")
        account.paused_reason = PauseReason.USER
        self._set_status(account, AccountStatus.PAUSED)
        await self.session.flush()
        return account

    async def resume(self, viewer: Viewer, account_id: uuid.UUID | None) -> MailAccount:
        account = await self.accounts.owned_for_change(viewer, account_id)
        if account.status is not AccountStatus.PAUSED:
            raise _not_ready(f"The account is {account.status}, not paused.")
        if account.paused_reason is PauseReason.PLAN:
            raise ServiceError(
                ErrorCode.PLAN_LIMIT_REACHED,
                "This account is paused because the plan allows fewer accounts.",
                "accountId",
            )
        account.paused_reason = None
        if account.past_sync is None:
            self._set_status(account, AccountStatus.READY)
        else:
            self._set_status(account, AccountStatus.ACTIVE)
            request_sync(self.session, self.runtime.jobs, account)
        await self.session.flush()
        return account
