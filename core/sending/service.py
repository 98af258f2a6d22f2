"""Sending rules: which account may send, the checks, and queueing the delivery.

A mutation stores the message as QUEUED and its delivery job is enqueued after the commit;
``core.sending.delivery`` does the SMTP and IMAP work in a worker.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import repository as account_repository
from core.db import after_commit
from core.errors import ErrorCode, ServiceError
from core.events import OutgoingMessageChanged
from core.identity import repository as identity_repository
from core.identity.viewer import Viewer
from core.models import AccountStatus, MailAccount, Message, OutgoingMessage, SendStatus
from core.notifications import announce_after_commit
from core.runtime import Runtime
from core.sending import repository
from core.sending.compose import (
    Draft,
    HeaderInjectionError,
    Headers,
    ValidDraft,
    build_mime,
    new_message_id,
    validate_draft,
)
from core.threads import repository as threads

RATE_WINDOW_SECONDS = 3600.0
MAX_LIST = 100
_NOT_READY = {
    AccountStatus.AUTH_FAILED: "reconnect it with its new password first",
    AccountStatus.PAUSED: "resume it first",
}


def _reply_keys(parent: Message) -> list[str]:
    """The msg-ids a reply to ``parent`` refers to: its References, then its own id."""
    keys = list(parent.references)
    if parent.message_id:
        keys.append(parent.message_id)
    return list(dict.fromkeys(keys))


class SendService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime

    # -- use cases -------------------------------------------------------------------------

    async def send(
        self, viewer: Viewer, from_account_id: uuid.UUID | None, draft: Draft
    ) -> OutgoingMessage:
        """Queue a message from one of the viewer's accounts (None: the default one)."""
        valid = validate_draft(draft)
        account = await self._sender(viewer, from_account_id, field="fromAccountId")
        parent = await self._parent(viewer, draft.in_reply_to)
        return await self._queue(viewer, account, valid, parent, automated=False)

    async def send_automated(self, viewer: Viewer, draft: Draft) -> OutgoingMessage:
        """Queue an automation's message: always from the default account as it is now."""
        valid = validate_draft(draft)
        account = await self._sender(viewer, None, field=None)
        return await self._queue(viewer, account, valid, None, automated=True)

    async def list_own(
        self, viewer: Viewer, status: SendStatus | None, first: int
    ) -> list[OutgoingMessage]:
        if not 1 <= first <= MAX_LIST:
            raise ServiceError(ErrorCode.INVALID_INPUT, f"first must be 1 to {MAX_LIST}.", "first")
        return await repository.list_owned(self.session, viewer.user_id, status, first)

    # -- the checks ------------------------------------------------------------------------

    async def _sender(
        self, viewer: Viewer, account_id: uuid.UUID | None, *, field: str | None
    ) -> MailAccount:
        if account_id is None:
            [user] = await identity_repository.get_users(self.session, [viewer.user_id])
            account_id = user.default_account_id
            if account_id is None:
                raise ServiceError(
                    ErrorCode.NO_DEFAULT_ACCOUNT,
                    "You have no default mail account to send from; choose one first.",
                    field,
                )
        # Only the owner sends from an account: a teammate's SHARED one is readable, and
        # answers like any account the viewer cannot use.
        account = await account_repository.get_owned(self.session, viewer.user_id, account_id)
        if account is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "No such mail account.", field)
        if not account.has_smtp:
            raise ServiceError(
                ErrorCode.ACCOUNT_NOT_SENDABLE,
                f"{account.email_address} has no SMTP server; add one to send from it.",
                field,
            )
        hint = _NOT_READY.get(account.status)
        if hint is not None:
            raise ServiceError(
                ErrorCode.ACCOUNT_NOT_READY,
                f"{account.email_address} is {account.status.value}: {hint}.",
                field,
            )
        return account

    async def _parent(self, viewer: Viewer, message_id: str | None) -> Message | None:
        """The message replied to; NOT_FOUND unless the viewer may read it."""
        if message_id is None:
            return None
        parent = await repository.get_message(
            self.session, self.runtime.message_ids.decode(message_id)
        )
        if parent is not None:
            account = await account_repository.get_readable(self.session, viewer, parent.account_id)
            if account is not None:
                return parent
        raise ServiceError(ErrorCode.NOT_FOUND, "No such message.", "inReplyToMessageId")

    async def _count_send(self, account: MailAccount) -> None:
        allowed = await self.runtime.rate_limiter.allow(
            f"send:{account.id}",
            limit=self.runtime.settings.send_rate_per_hour,
            window_seconds=RATE_WINDOW_SECONDS,
        )
        if not allowed:
            raise ServiceError(
                ErrorCode.RATE_LIMITED,
                f"{account.email_address} has sent {self.runtime.settings.send_rate_per_hour} "
                "messages in the last hour; try again later.",
            )

    # -- storing ---------------------------------------------------------------------------

    async def _thread_of(self, viewer: Viewer, parent: Message | None) -> uuid.UUID:
        """The conversation in the viewer's own threading (a teammate's mail has its own)."""
        if parent is None:
            return uuid.uuid4()
        own = await account_repository.get_owned(self.session, viewer.user_id, parent.account_id)
        if own is not None:
            return parent.thread_id
        known = await threads.thread_ids_for(self.session, viewer.user_id, _reply_keys(parent))
        return next(iter(known.values()), None) or uuid.uuid4()

    async def _queue(
        self,
        viewer: Viewer,
        account: MailAccount,
        draft: ValidDraft,
        parent: Message | None,
        *,
        automated: bool,
    ) -> OutgoingMessage:
        references = _reply_keys(parent) if parent is not None else []
        in_reply_to = parent.message_id if parent is not None else None
        thread_id = await self._thread_of(viewer, parent)
        message_id = new_message_id(account.email_address)
        headers = Headers(
            from_address=account.email_address,
            from_name=account.display_name,
            message_id=message_id,
            date=datetime.now(UTC),
            in_reply_to=in_reply_to,
            references=references,
        )
        try:
            mime = build_mime(draft, headers)
        except HeaderInjectionError:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "A header of this message would hold a line break; check the subject.",
                "subject",
            ) from None
        await self._count_send(account)  # last: a refused send must not use up the quota
        outgoing = OutgoingMessage(
            id=uuid.uuid4(),
            owner_id=viewer.user_id,
            account_id=account.id,
            from_address=account.email_address,
            from_name=account.display_name,
            to_addresses=draft.to,
            cc_addresses=draft.cc,
            bcc_addresses=draft.bcc,
            subject=draft.subject,
            body_text=draft.body_text,
            body_html=draft.body_html,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=references,
            thread_id=thread_id,
            automated=automated,
            mime=mime,
            status=SendStatus.QUEUED,
            created_at=headers.date,
        )
        self.session.add(outgoing)
        await self.session.flush()
        # The sent copy, once synced, joins this conversation (and so do replies to it).
        await threads.remember_thread_keys(
            self.session, viewer.user_id, {key: thread_id for key in [*references, message_id]}
        )
        self._enqueue_after_commit(outgoing.id)
        return outgoing

    def _enqueue_after_commit(self, outgoing_id: uuid.UUID) -> None:
        jobs = self.runtime.jobs

        async def enqueue() -> None:
            await jobs.enqueue_send(outgoing_id)

        after_commit(self.session, enqueue)


def announce_change(session: AsyncSession, runtime: Runtime, outgoing: OutgoingMessage) -> None:
    """Tell the owner's subscription clients, once the transaction has committed."""
    event = OutgoingMessageChanged(outgoing_id=outgoing.id, status=outgoing.status.value)
    announce_after_commit(session, runtime.events, outgoing.owner_id, event)
