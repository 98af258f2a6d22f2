from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.identity.viewer import Viewer
from core.mail.imap import Mailbox
from core.models import AccountStatus, Folder, MailAccount, Message, Sharing, User


def readable_by(viewer: Viewer) -> ColumnElement[bool]:
    """Own accounts, plus SHARED accounts of users in the viewer's company."""
    teammates = select(User.id).where(User.company_id == viewer.company_id)
    return or_(
        MailAccount.owner_id == viewer.user_id,
        (MailAccount.sharing == Sharing.SHARED) & MailAccount.owner_id.in_(teammates),
    )


async def get(
    session: AsyncSession, account_id: uuid.UUID, *, lock: bool = False
) -> MailAccount | None:
    """The account by id, for jobs (which get ids, never rows); ``lock``: FOR UPDATE, and
    the row read again even if the session has it."""
    query = select(MailAccount).where(MailAccount.id == account_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, account_id: uuid.UUID, *, lock: bool = False
) -> MailAccount | None:
    """The account if ``owner_id`` owns it (changing it, sending from it)."""
    query = select(MailAccount).where(
        MailAccount.id == account_id, MailAccount.owner_id == owner_id
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def get_many_readable(
    session: AsyncSession, viewer: Viewer, account_ids: Sequence[uuid.UUID]
) -> list[MailAccount]:
    """The accounts among ``account_ids`` that ``viewer`` may read (see :func:`readable_by`)."""
    return list(
        await session.scalars(
            select(MailAccount).where(MailAccount.id.in_(account_ids), readable_by(viewer))
        )
    )


async def get_readable(
    session: AsyncSession, viewer: Viewer, account_id: uuid.UUID
) -> MailAccount | None:
    found = await get_many_readable(session, viewer, [account_id])
    return found[0] if found else None


async def list_owned(session: AsyncSession, owner_ids: Sequence[uuid.UUID]) -> list[MailAccount]:
    """The accounts of these owners, oldest first (the order plan limits keep)."""
    return list(
        await session.scalars(
            select(MailAccount)
            .where(MailAccount.owner_id.in_(owner_ids))
            .order_by(MailAccount.created_at, MailAccount.id)
        )
    )


async def count_owned(session: AsyncSession, owner_id: uuid.UUID) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(MailAccount).where(MailAccount.owner_id == owner_id)
        )
    ) or 0


async def owner_has_address(session: AsyncSession, owner_id: uuid.UUID, address: str) -> bool:
    found = await session.scalar(
        select(MailAccount.id).where(
            MailAccount.owner_id == owner_id,
            func.lower(MailAccount.email_address) == address.lower(),
        )
    )
    return found is not None


async def owned_with_login(
    session: AsyncSession,
    owner_id: uuid.UUID,
    host: str,
    username: str,
    *,
    other_than: uuid.UUID | None = None,
) -> MailAccount | None:
    """The owner's account that logs in as ``username`` on ``host`` (both compared without
    case), other than ``other_than``: the same mailbox, whatever address it was added as."""
    query = select(MailAccount).where(
        MailAccount.owner_id == owner_id,
        func.lower(MailAccount.imap_host) == host.lower(),
        func.lower(MailAccount.imap_username) == username.lower(),
    )
    if other_than is not None:
        query = query.where(MailAccount.id != other_than)
    return await session.scalar(query.limit(1))


async def add_folders(
    session: AsyncSession, account_id: uuid.UUID, mailboxes: Iterable[Mailbox]
) -> None:
    session.add_all(
        Folder(
            id=uuid.uuid4(),
            account_id=account_id,
            name=m.name,
            delimiter=m.delimiter,
            attributes=list(m.attributes),
            role=m.role,
            selected=False,
        )
        for m in mailboxes
    )
    await session.flush()


async def count_messages_in(session: AsyncSession, folder_ids: Sequence[uuid.UUID]) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(Message).where(Message.folder_id.in_(folder_ids))
        )
    ) or 0


async def delete_folders(session: AsyncSession, folder_ids: Sequence[uuid.UUID]) -> None:
    """Delete the folders and, with them, their stored mail."""
    await session.execute(delete(Folder).where(Folder.id.in_(folder_ids)))


async def get_readable_folders(
    session: AsyncSession, viewer: Viewer, folder_ids: Sequence[uuid.UUID]
) -> list[Folder]:
    return list(
        await session.scalars(
            select(Folder)
            .join(MailAccount, MailAccount.id == Folder.account_id)
            .where(Folder.id.in_(folder_ids), readable_by(viewer))
        )
    )


async def folders_of(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> list[Folder]:
    return list(
        await session.scalars(
            select(Folder).where(Folder.account_id.in_(account_ids)).order_by(Folder.name)
        )
    )


async def delete_account(session: AsyncSession, account: MailAccount) -> None:
    await session.execute(delete(MailAccount).where(MailAccount.id == account.id))


async def syncing_folders(
    session: AsyncSession, owner_id: uuid.UUID, account_id: uuid.UUID | None
) -> list[tuple[MailAccount, Folder]]:
    """The selected folders of the owner's SYNCING accounts (one account, or all), with
    their account: what a sync in progress has stored of each so far."""
    query = (
        select(MailAccount, Folder)
        .join(Folder, Folder.account_id == MailAccount.id)
        .where(
            MailAccount.owner_id == owner_id,
            MailAccount.status == AccountStatus.SYNCING,
            Folder.selected.is_(True),
        )
        .order_by(MailAccount.created_at, MailAccount.id, Folder.name)
    )
    if account_id is not None:
        query = query.where(MailAccount.id == account_id)
    return [(account, folder) for account, folder in await session.execute(query)]


async def count_by_status(session: AsyncSession) -> dict[AccountStatus, int]:
    """Accounts per status (the metrics' gauge)."""
    rows = await session.execute(
        select(MailAccount.status, func.count()).group_by(MailAccount.status)
    )
    return {status: count for status, count in rows.all()}


async def count_overdue(session: AsyncSession, synced_before: datetime) -> int:
    """Active accounts whose last sync finished before ``synced_before`` (the scheduler
    moves ``next_sync_at`` on when it queues a sync, so that says nothing about a backlog;
    the last finished sync does)."""
    count = await session.scalar(
        select(func.count()).where(
            MailAccount.status == AccountStatus.ACTIVE,
            MailAccount.last_synced_at < synced_before,
        )
    )
    return count or 0
