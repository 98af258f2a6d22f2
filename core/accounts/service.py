"""Connecting, changing and removing mail accounts, and choosing the default one.

Services flush, never commit; status events go out after the commit (``after_commit``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import credentials, repository
from core.accounts.folders import StoredFolder, apply_server_folders, folder_statuses
from core.accounts.inputs import (
    NewAccount,
    ValidAccount,
    validate_display_name,
    validate_new_account,
)
from core.accounts.limits import apply_account_limit
from core.accounts.logins import stored_imap_login
from core.accounts.status import AUTH_FAILED, ERROR, status_after_resume, transition
from core.accounts.verification import verify_logins, verify_smtp
from core.errors import ErrorCode, ServiceError
from core.identity import repository as identity_repository
from core.identity.viewer import Viewer
from core.mail.imap import Mailbox, imap_session
from core.mail.mailbox import MailboxOps
from core.mail.server import ServerLogin
from core.models import AccountStatus, MailAccount, Plan, Sharing, User
from core.oauth.tokens import revoke_grant_after_commit
from core.plans import account_limit
from core.runtime import Runtime
from core.sync.requests import request_sync

CREDENTIAL_CHECK_WINDOW_SECONDS = 60.0


def _password_field(error: ServiceError, field: str) -> str | None:
    """Reconnect's input has only passwords: a refused login points at one, else nothing."""
    return field if error.code is ErrorCode.INVALID_CREDENTIALS else None


def _not_found(field: str = "accountId") -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, "No such mail account.", field)


@dataclass(frozen=True)
class AccountChanges:
    display_name: str | None = None
    display_name_set: bool = False
    sharing: Sharing | None = None


class AccountService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime

    # -- helpers ---------------------------------------------------------------------------

    async def count_credential_check(self, viewer: Viewer) -> None:
        """Every path that logs in to a user's mail server on their request counts here."""
        allowed = await self.runtime.rate_limiter.allow(
            f"credential-check:{viewer.user_id}",
            limit=self.runtime.settings.credential_checks_per_minute,
            window_seconds=CREDENTIAL_CHECK_WINDOW_SECONDS,
        )
        if not allowed:
            raise ServiceError(
                ErrorCode.RATE_LIMITED,
                "Too many login checks in the last minute; wait a minute and try again.",
            )

    async def check_login_unused(
        self,
        owner_id: uuid.UUID,
        host: str,
        username: str,
        other_than: uuid.UUID | None = None,
    ) -> None:
        """DUPLICATE_ACCOUNT when another of the owner's accounts logs in to the same
        mailbox (server and username), whatever address it was connected as: it would be
        synced twice."""
        existing = await repository.owned_with_login(
            self.session, owner_id, host, username, other_than=other_than
        )
        if existing is not None:
            raise ServiceError(
                ErrorCode.DUPLICATE_ACCOUNT,
                f"{username} on {host} is already connected, as {existing.email_address}.",
                "imap.username",
            )

    async def check_room_for(self, owner_id: uuid.UUID, plan: Plan, address: str | None) -> None:
        """The plan's checks for one more account (``address`` None: not known yet)."""
        if plan is Plan.ESSENTIAL:
            raise ServiceError(
                ErrorCode.SYNC_NOT_IN_PLAN,
                "Your company's plan (ESSENTIAL) does not include email sync.",
            )
        if address is not None and await repository.owner_has_address(
            self.session, owner_id, address
        ):
            raise ServiceError(
                ErrorCode.DUPLICATE_ACCOUNT,
                f"You have already connected {address}.",
                "emailAddress",
            )
        limit = account_limit(plan)
        if await repository.count_owned(self.session, owner_id) >= limit:
            raise ServiceError(
                ErrorCode.PLAN_LIMIT_REACHED,
                f"Your plan ({plan.value}) allows {limit} mail account"
                f"{'' if limit == 1 else 's'} per user.",
            )

    # -- use cases -------------------------------------------------------------------------

    async def add(self, viewer: Viewer, data: NewAccount) -> MailAccount:
        """Verify the logins, then store the account (READY) and its folders."""
        valid = validate_new_account(data)
        await self.check_room_for(viewer.user_id, viewer.plan, valid.email_address)
        await self.check_login_unused(viewer.user_id, valid.imap.host, valid.imap.username)
        # Release the pooled connection while we talk to the mail server (up to the mail
        # timeout): nothing has been written yet, and the checks are repeated under a lock.
        await self.session.rollback()
        await self.count_credential_check(viewer)
        mailboxes = await verify_logins(valid.imap, valid.smtp, self.runtime.mail_options)
        return await self.store_new_account(
            viewer, self._new_account_row(viewer.user_id, valid), mailboxes
        )

    async def store_new_account(
        self, viewer: Viewer, account: MailAccount, mailboxes: list[Mailbox]
    ) -> MailAccount:
        """Store a verified account (READY) and its folders, after the plan's checks under a
        lock on the user (so parallel adds cannot pass the limit)."""
        user = await identity_repository.lock_user(self.session, viewer.user_id)
        plan = await identity_repository.get_company_plan(self.session, viewer.company_id)
        await self.check_room_for(viewer.user_id, plan, account.email_address)
        await self.check_login_unused(viewer.user_id, account.imap_host, account.imap_username)
        is_first = await repository.count_owned(self.session, viewer.user_id) == 0
        self.session.add(account)
        await self.session.flush()
        await repository.add_folders(self.session, account.id, mailboxes)
        # Only a user's first account becomes the default by itself: a default the user
        # cleared stays cleared (automated emails must not pick a sender on their own).
        if is_first and user.default_account_id is None:
            user.default_account_id = account.id
        await self.session.flush()
        return account

    def _new_account_row(self, owner_id: uuid.UUID, valid: ValidAccount) -> MailAccount:
        account_id = uuid.uuid4()
        smtp = valid.smtp
        return MailAccount(
            id=account_id,
            owner_id=owner_id,
            email_address=valid.email_address,
            display_name=valid.display_name,
            status=AccountStatus.READY,
            sharing=Sharing.PRIVATE,
            labels=[],
            imap_host=valid.imap.host,
            imap_port=valid.imap.port,
            imap_security=valid.imap.security,
            imap_username=valid.imap.username,
            imap_password_encrypted=credentials.seal(
                self.runtime.key_ring, account_id, credentials.IMAP, valid.imap.password
            ),
            smtp_host=smtp.host if smtp else None,
            smtp_port=smtp.port if smtp else None,
            smtp_security=smtp.security if smtp else None,
            smtp_username=smtp.username if isinstance(smtp, ServerLogin) else None,
            smtp_password_encrypted=(
                credentials.seal(self.runtime.key_ring, account_id, credentials.SMTP, smtp.password)
                if isinstance(smtp, ServerLogin)
                else None
            ),
        )

    async def owned_for_change(self, viewer: Viewer, account_id: uuid.UUID | None) -> MailAccount:
        """The viewer's own account, locked; teammates' shared accounts are read-only."""
        if account_id is None:
            raise _not_found()
        account = await repository.get_owned(self.session, viewer.user_id, account_id, lock=True)
        if account is not None:
            return account
        if await repository.get_readable(self.session, viewer, account_id) is not None:
            raise ServiceError(
                ErrorCode.FORBIDDEN, "Only the owner can change this account.", "accountId"
            )
        raise _not_found()

    async def update(
        self, viewer: Viewer, account_id: uuid.UUID | None, changes: AccountChanges
    ) -> MailAccount:
        account = await self.owned_for_change(viewer, account_id)
        if changes.display_name_set:
            account.display_name = validate_display_name(changes.display_name)
        if changes.sharing is not None:
            account.sharing = changes.sharing
        await self.session.flush()
        return account

    async def reconnect(
        self,
        viewer: Viewer,
        account_id: uuid.UUID | None,
        imap_password: str,
        smtp_password: str | None,
    ) -> MailAccount:
        """Store new passwords after proving them; an AUTH_FAILED or ERROR account resumes."""
        account = await self.owned_for_change(viewer, account_id)
        if account.uses_oauth:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "This account signs in with OAuth2, not a password: reconnect it with "
                "startOAuthConnection(accountId).",
                "accountId",
            )
        if not imap_password:
            raise ServiceError(ErrorCode.INVALID_INPUT, "The password is empty.", "imapPassword")
        if smtp_password is not None and account.smtp_username is None:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "This account has no SMTP login to use that password with.",
                "smtpPassword",
            )
        # Built from the new passwords: the stored ones may be unreadable (a retired key).
        key_ring = self.runtime.key_ring
        imap = credentials.imap_login(key_ring, account, imap_password)
        smtp = credentials.smtp_login(key_ring, account, smtp_password) if smtp_password else None
        account_key = account.id
        await self.session.rollback()  # as in add(): no connection held during the check
        await self.count_credential_check(viewer)
        try:
            async with imap_session(imap, self.runtime.mail_options):
                pass
        except ServiceError as exc:
            raise exc.for_field(_password_field(exc, "imapPassword")) from None
        if smtp is not None:
            try:
                await verify_smtp(smtp, self.runtime.mail_options)
            except ServiceError as exc:
                raise exc.for_field(_password_field(exc, "smtpPassword")) from None

        account = await self.owned_for_change(viewer, account_key)
        account.imap_password_encrypted = credentials.seal(
            key_ring, account.id, credentials.IMAP, imap_password
        )
        if smtp is not None and smtp_password:
            account.smtp_password_encrypted = credentials.seal(
                key_ring, account.id, credentials.SMTP, smtp_password
            )
        else:
            credentials.reseal_smtp_if_old_key(key_ring, account)
        self.resume_after_proven_login(account)
        await self.session.flush()
        return account

    def resume_after_proven_login(self, account: MailAccount) -> None:
        """A login was just proven: clear the error; an AUTH_FAILED or ERROR account resumes."""
        account.last_error = None
        account.consecutive_failures = 0
        if account.status in (AUTH_FAILED, ERROR):
            transition(self.session, self.runtime.events, account, status_after_resume(account))
            if account.status is AccountStatus.ACTIVE:
                account.initial_sync_pending = True
                request_sync(self.session, self.runtime.jobs, account)

    async def refresh_folders(self, viewer: Viewer, account_id: uuid.UUID) -> None:
        """List the server's folders again (one IMAP login, counted like any login check)
        and store the difference. The session's transaction is ended first: nothing may be
        written in it before this call, and no lock or connection is held while the mail
        server answers (a slow server would otherwise hold them for the mail timeout)."""
        account = await repository.get_owned(self.session, viewer.user_id, account_id)
        if account is None:
            raise _not_found()
        login = stored_imap_login(self.runtime, account)
        known = [
            StoredFolder.of(f) for f in await repository.folders_of(self.session, [account.id])
        ]
        await self.session.rollback()
        await self.count_credential_check(viewer)
        async with imap_session(login, self.runtime.mail_options) as imap:
            mailboxes = await imap.list_mailboxes()
            statuses = await folder_statuses(MailboxOps(imap), known, mailboxes)
        locked = await self.owned_for_change(viewer, account_id)
        await apply_server_folders(self.session, locked, mailboxes, statuses)

    async def remove(self, viewer: Viewer, account_id: uuid.UUID | None) -> uuid.UUID:
        """Delete the account and its synced mail; the default is not reassigned."""
        await identity_repository.lock_user(self.session, viewer.user_id)
        account = await self.owned_for_change(viewer, account_id)
        removed_id = account.id
        await revoke_grant_after_commit(self.session, self.runtime, account)
        await repository.delete_account(self.session, account)
        await self.session.flush()
        # One account fewer may bring the user back within the plan's limit.
        plan = await identity_repository.get_company_plan(self.session, viewer.company_id)
        remaining = await repository.list_owned(self.session, [viewer.user_id])
        apply_account_limit(self.session, self.runtime.events, remaining, account_limit(plan))
        await self.session.flush()
        return removed_id

    async def set_default(self, viewer: Viewer, account_id: uuid.UUID | None) -> User:
        user = await identity_repository.lock_user(self.session, viewer.user_id)
        if account_id is not None:
            account = await self.owned_for_change(viewer, account_id)
            account_id = account.id
        user.default_account_id = account_id
        await self.session.flush()
        return user


async def change_company_plan(
    session: AsyncSession, runtime: Runtime, company_name: str, plan: Plan
) -> list[MailAccount]:
    """Set a company's plan and pause/resume its users' accounts to fit; the changed accounts."""
    company = await identity_repository.get_company_by_name(session, company_name)
    if company is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"No company named {company_name}.", "company")
    company.plan = plan
    users = await identity_repository.list_company_users(session, company.id)
    for user in users:
        await identity_repository.lock_user(session, user.id)
    accounts = await repository.list_owned(session, [u.id for u in users])
    by_owner: dict[uuid.UUID, list[MailAccount]] = {}
    for account in accounts:
        by_owner.setdefault(account.owner_id, []).append(account)
    changed: list[MailAccount] = []
    for owned in by_owner.values():
        changed += apply_account_limit(session, runtime.events, owned, account_limit(plan))
    await session.flush()
    return changed
