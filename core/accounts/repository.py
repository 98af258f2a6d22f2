from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.identity.viewer import Viewer
from core.mail.imap import Mailbox
from core.models import Folder, MailAccount, Message, Sharing, User


def readable_by(viewer: Viewer) -> ColumnElement[bool]:
    """Own accounts, plus SHARED accounts of users in the viewer's company."""
    teammates = select(User.id).where(User.company_id == viewer.company_id)
    return or_(
        MailAccount.owner_id == viewer.user_id,
        (MailAccount.sharing == Sharing.SHARED) & MailAccount.owner_id.in_(teammates),
    )


async def list_owned(session: AsyncSession, owner_id: uuid.UUID) -> list[MailAccount]:
    return list(
        await session.scalars(
            select(MailAccount)
            .where(MailAccount.owner_id == owner_id)
            .order_by(MailAccount.created_at, MailAccount.id)
        )
    )


async def list_owned_by_users(
    session: AsyncSession, owner_ids: Sequence[uuid.UUID]
) -> list[MailAccount]:
    return list(
        await session.scalars(
            select(MailAccount)
            .where(MailAccount.owner_id.in_(owner_ids))
            .order_by(MailAccount.created_at, MailAccount.id)
        )
    )


async def get_readable(
    session: AsyncSession, viewer: Viewer, account_id: uuid.UUID
) -> MailAccount | None:
    return await session.scalar(
        select(MailAccount).where(MailAccount.id == account_id, readable_by(viewer))
    )


async def get_many_readable(
    session: AsyncSession, viewer: Viewer, account_ids: Sequence[uuid.UUID]
) -> list[MailAccount]:
    return list(
        await session.scalars(
            select(MailAccount).where(MailAccount.id.in_(account_ids), readable_by(viewer))
        )
    )


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, account_id: uuid.UUID
) -> MailAccount | None:
    return await session.scalar(
        select(MailAccount).where(MailAccount.id == account_id, MailAccount.owner_id == owner_id)
    )


async def lock_owned(
    session: AsyncSession, owner_id: uuid.UUID, account_id: uuid.UUID
) -> MailAccount | None:
    return await session.scalar(
        select(MailAccount)
        .where(MailAccount.id == account_id, MailAccount.owner_id == owner_id)
        .with_for_update()
        .execution_options(populate_existing=True)
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


@dataclass(frozen=True)
class FolderRefresh:
    added: list[str]
    dropped_selected: list[str]  # synced folders the server no longer has
    dropped_messages: int


async def refresh_folders(
    session: AsyncSession, account: MailAccount, mailboxes: Sequence[Mailbox]
) -> FolderRefresh:
    """Make the stored folder list the server's: add new folders, delete vanished ones
    (with their mail), and keep ``account.labels`` to folders that exist."""
    existing = {f.name: f for f in await folders_of(session, [account.id])}
    on_server = {m.name for m in mailboxes}
    new = [m for m in mailboxes if m.name not in existing]
    if new:
        await add_folders(session, account.id, new)
    gone = [f for name, f in existing.items() if name not in on_server]
    dropped = 0
    if gone:
        dropped = (
            await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.folder_id.in_([f.id for f in gone]))
            )
        ) or 0
        await session.execute(delete(Folder).where(Folder.id.in_([f.id for f in gone])))
        account.labels = [label for label in account.labels if label in on_server]
        await session.flush()
    return FolderRefresh(
        added=[m.name for m in new],
        dropped_selected=[f.name for f in gone if f.selected],
        dropped_messages=dropped,
    )


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
