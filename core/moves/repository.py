"""SQL of moving and deleting messages here and writing that back to the server."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Exists, Select, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.accounts.repository import readable_by
from core.identity.viewer import Viewer
from core.models import Folder, FolderRole, MailAccount, Message, PendingMove

# A moved row waits in its target folder under a UID no server uses (UIDs are < 2**32, and
# a renumbered folder parks its rows at minus their old UID): unique per row.
_PARKED_BASE = 2**32


def parked_uid(row_id: int) -> int:
    return -(_PARKED_BASE + row_id)


@dataclass(frozen=True)
class Movable:
    id: int
    account_id: uuid.UUID
    owner_id: uuid.UUID
    folder_id: uuid.UUID
    folder_role: FolderRole
    uid: int
    uidvalidity: int | None
    pending: PendingMove | None


_MovableRow = Select[int, uuid.UUID, uuid.UUID, uuid.UUID, FolderRole, int, int | None, PendingMove]


def _movable_query(viewer: Viewer) -> _MovableRow:
    return (
        select(
            Message.id,
            Message.account_id,
            MailAccount.owner_id,
            Message.folder_id,
            Folder.role,
            Message.uid,
            Folder.uidvalidity,
            PendingMove,
        )
        .join(MailAccount, MailAccount.id == Message.account_id)
        .join(Folder, Folder.id == Message.folder_id)
        .outerjoin(PendingMove, PendingMove.message_id == Message.id)
        .where(readable_by(viewer))
    )


async def movable(
    session: AsyncSession, viewer: Viewer, message_ids: Sequence[int]
) -> dict[int, Movable]:
    """The messages among ``message_ids`` the viewer may read, locked for the change."""
    rows = await session.execute(
        _movable_query(viewer).where(Message.id.in_(message_ids)).with_for_update(of=Message)
    )
    return {r[0]: Movable(*r) for r in rows}


async def movable_in_threads(
    session: AsyncSession,
    viewer: Viewer,
    thread_ids: Sequence[uuid.UUID],
    role: FolderRole,
) -> list[Movable]:
    """The viewer's own messages of these conversations in folders with ``role``."""
    rows = await session.execute(
        _movable_query(viewer)
        .where(
            Message.thread_id.in_(thread_ids),
            Folder.role == role,
            MailAccount.owner_id == viewer.user_id,
            Message.is_deleted.is_(False),
        )
        .order_by(Message.id)
        .with_for_update(of=Message)
    )
    return [Movable(*r) for r in rows]


async def folders_of(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Folder]]:
    """The accounts' folders, by account, in a stable order (selected first, then name)."""
    rows = await session.scalars(
        select(Folder)
        .where(Folder.account_id.in_(account_ids))
        .order_by(Folder.selected.desc(), Folder.name)
    )
    found: dict[uuid.UUID, list[Folder]] = {}
    for folder in rows:
        found.setdefault(folder.account_id, []).append(folder)
    return found


async def move_locally(
    session: AsyncSession, message: Movable, target_folder_id: uuid.UUID
) -> None:
    """The row shows in the target now; the server's copy is remembered until written back."""
    pending = message.pending
    if pending is not None and pending.source_folder_id == target_folder_id:
        # Back where the server still has it: nothing to write back any more.
        await session.execute(delete(PendingMove).where(PendingMove.id == pending.id))
        await _place(session, message.id, target_folder_id, pending.source_uid, deleted=False)
        return
    await _remember(session, message, target_folder_id)
    await _place(session, message.id, target_folder_id, parked_uid(message.id), deleted=False)


async def delete_locally(session: AsyncSession, message: Movable) -> None:
    """Hidden now (as a \\Deleted message is); expunged on the server by the next sync run."""
    await _remember(session, message, None)
    await session.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(is_deleted=True, write_back_error=None)
        .execution_options(synchronize_session=False)
    )


async def _remember(
    session: AsyncSession, message: Movable, target_folder_id: uuid.UUID | None
) -> None:
    """Where the message is to go; a pending one keeps its source (the server's copy is
    still there)."""
    if message.pending is not None:
        message.pending.target_folder_id = target_folder_id
        return
    await session.execute(
        insert(PendingMove).values(
            message_id=message.id,
            account_id=message.account_id,
            source_folder_id=message.folder_id,
            source_uid=message.uid,
            source_uidvalidity=message.uidvalidity,
            target_folder_id=target_folder_id,
        )
    )


async def _place(
    session: AsyncSession, row_id: int, folder_id: uuid.UUID, uid: int, *, deleted: bool
) -> None:
    await session.execute(
        update(Message)
        .where(Message.id == row_id)
        .values(folder_id=folder_id, uid=uid, is_deleted=deleted, write_back_error=None)
        .execution_options(synchronize_session=False)
    )


# -- the write-back --------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingWrite:
    id: int
    message_id: int
    source_folder_id: uuid.UUID
    source_name: str
    source_uid: int
    source_uidvalidity: int | None
    target_folder_id: uuid.UUID | None
    target_name: str | None
    target_selected: bool
    target_uidvalidity: int | None
    attempts: int


async def pending_writes(session: AsyncSession, account_id: uuid.UUID) -> list[PendingWrite]:
    source, target = aliased(Folder, name="source"), aliased(Folder, name="target")
    rows = await session.execute(
        select(
            PendingMove.id,
            PendingMove.message_id,
            PendingMove.source_folder_id,
            source.name,
            PendingMove.source_uid,
            PendingMove.source_uidvalidity,
            PendingMove.target_folder_id,
            target.name,
            target.selected,
            target.uidvalidity,
            PendingMove.attempts,
        )
        .join(source, source.id == PendingMove.source_folder_id)
        .outerjoin(target, target.id == PendingMove.target_folder_id)
        .where(PendingMove.account_id == account_id)
        .order_by(PendingMove.id)
    )
    return [PendingWrite(*r[:8], bool(r[8]), r[9], r[10]) for r in rows]


async def written(
    session: AsyncSession,
    writes: Sequence[PendingWrite],
    new_uids: dict[int, int],
    *,
    expunged: bool,
) -> None:
    """The server did it: moved rows take their new UID (COPYUID) or stay parked for the
    target folder's sync to find by Message-ID; rows that left the synced folders, or were
    expunged, go."""
    for write in writes:
        await session.execute(delete(PendingMove).where(PendingMove.id == write.id))
        gone = write.target_folder_id is None and expunged
        if write.target_folder_id is not None and not write.target_selected:
            gone = True
        new_uid = new_uids.get(write.source_uid)
        if not gone and write.target_folder_id is not None and new_uid is not None:
            taken = await session.scalar(
                select(Message.id).where(
                    Message.folder_id == write.target_folder_id, Message.uid == new_uid
                )
            )
            if taken is None:
                await session.execute(
                    update(Message)
                    .where(Message.id == write.message_id)
                    .values(uid=new_uid)
                    .execution_options(synchronize_session=False)
                )
            else:  # the target's sync stored it already (another client moved it too)
                gone = True
        if gone:
            await session.execute(delete(Message).where(Message.id == write.message_id))


async def refused(
    session: AsyncSession, writes: Sequence[PendingWrite], reason: str, *, give_up: bool
) -> None:
    """The server refused: tried again next run, or (``give_up``) undone, the message back
    where the server has it, with the reason on it."""
    for write in writes:
        if not give_up:
            await session.execute(
                update(PendingMove)
                .where(PendingMove.id == write.id)
                .values(attempts=PendingMove.attempts + 1)
            )
            continue
        await session.execute(delete(PendingMove).where(PendingMove.id == write.id))
        await session.execute(
            update(Message)
            .where(Message.id == write.message_id)
            .values(
                folder_id=write.source_folder_id,
                uid=write.source_uid,
                is_deleted=False,
                write_back_error=reason,
            )
            .execution_options(synchronize_session=False)
        )


async def renumbered(session: AsyncSession, writes: Sequence[PendingWrite]) -> None:
    """The source folder has a new UIDVALIDITY: the UIDs name other messages now. The rows
    go back there, parked, for that folder's sync to find again by Message-ID."""
    for write in writes:
        await session.execute(delete(PendingMove).where(PendingMove.id == write.id))
        await session.execute(
            update(Message)
            .where(Message.id == write.message_id)
            .values(
                folder_id=write.source_folder_id,
                uid=-write.source_uid,
                is_deleted=False,
                write_back_error="The folder was renumbered on the server; move it again.",
            )
            .execution_options(synchronize_session=False)
        )


def pending_of_account(account_id: uuid.UUID) -> Select[int]:
    """The account's moves and deletes not yet written back (for an EXISTS)."""
    return select(PendingMove.id).where(PendingMove.account_id == account_id)


def pending_source_uids(folder_id: uuid.UUID) -> Select[int]:
    """UIDs of a folder's messages moved away here and still there on the server."""
    return select(PendingMove.source_uid).where(
        PendingMove.source_folder_id == folder_id, PendingMove.target_folder_id.is_not(None)
    )


def has_pending_move() -> Exists:
    return select(PendingMove.id).where(PendingMove.message_id == Message.id).exists()
