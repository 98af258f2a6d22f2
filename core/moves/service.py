"""Archiving, moving and deleting messages, for the owner of their account.

The rows change at once (the inbox shows the new place in the same request) and the
account's next sync run, queued here, writes the change to the server before it reads
any folder (core.moves.write_back). Writes are the owner's only: a teammate's shared mail
is read-only. All or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ErrorCode, ServiceError
from core.identity.viewer import Viewer
from core.inbox import repository as inbox_repository
from core.inbox.repository import MessageRow
from core.models import Folder, FolderRole
from core.moves import repository
from core.moves.repository import Movable
from core.runtime import Runtime
from core.sync import repository as sync_repository
from core.sync.requests import request_syncs

MAX_MOVE = 500
MAX_THREADS = 100


@dataclass(frozen=True)
class MoveTarget:
    """Exactly one: a role (each message goes to its own account's folder with it), or a
    folder of the messages' account."""

    role: FolderRole | None = None
    folder_id: uuid.UUID | None = None


async def move_messages(
    session: AsyncSession,
    runtime: Runtime,
    viewer: Viewer,
    api_ids: Sequence[str],
    thread_ids: Sequence[uuid.UUID],
    target: MoveTarget,
    from_role: FolderRole = FolderRole.INBOX,
) -> list[MessageRow]:
    """Move the messages (and the viewer's messages in ``from_role`` folders of the
    conversations ``thread_ids``) to ``target``; the moved rows."""
    if (target.role is None) == (target.folder_id is None):
        raise ServiceError(ErrorCode.INVALID_INPUT, "Give a `role` or a `folderId`.", "to")
    found = await _owned(session, runtime, viewer, api_ids)
    if thread_ids:
        if len(thread_ids) > MAX_THREADS:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                f"Move at most {MAX_THREADS} conversations at a time.",
                "threadIds",
            )
        for message in await repository.movable_in_threads(session, viewer, thread_ids, from_role):
            found.setdefault(message.id, message)
    if not found:
        raise ServiceError(ErrorCode.NOT_FOUND, "No such messages.", "ids")
    folders = await repository.folders_of(session, sorted({m.account_id for m in found.values()}))
    touched: set[uuid.UUID] = set()
    for message in found.values():
        destination = _destination(folders.get(message.account_id, []), target)
        if destination.id == message.folder_id:
            continue
        if message.uid < 0 and message.pending is None:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "A message is being re-synced after its folder was renumbered; try again soon.",
                "ids",
            )
        await repository.move_locally(session, message, destination.id)
        touched |= {message.folder_id, destination.id}
    return await _finish(session, runtime, found, touched)


async def delete_messages(
    session: AsyncSession, runtime: Runtime, viewer: Viewer, api_ids: Sequence[str]
) -> list[MessageRow]:
    """Delete messages in Trash for good (on the server too); the deleted rows, as they
    were shown last."""
    found = await _owned(session, runtime, viewer, api_ids)
    if not found:
        raise ServiceError(ErrorCode.INVALID_INPUT, "Give at least one message id.", "ids")
    for position, message in enumerate(found.values()):
        if message.folder_role is not FolderRole.TRASH:
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "Only messages in Trash can be deleted for good: move them there first.",
                f"ids[{position}]",
            )
    for message in found.values():
        await repository.delete_locally(session, message)
    return await _finish(session, runtime, found, {m.folder_id for m in found.values()})


async def _owned(
    session: AsyncSession, runtime: Runtime, viewer: Viewer, api_ids: Sequence[str]
) -> dict[int, Movable]:
    if len(api_ids) > MAX_MOVE:  # before any id is looked at
        raise ServiceError(
            ErrorCode.INVALID_INPUT, f"Move at most {MAX_MOVE} messages at a time.", "ids"
        )
    message_ids = [runtime.message_ids.decode(i) for i in api_ids]
    found = await repository.movable(session, viewer, message_ids) if message_ids else {}
    for position, message_id in enumerate(message_ids):
        message = found.get(message_id)
        if message is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "No such message.", f"ids[{position}]")
        if message.owner_id != viewer.user_id:
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                "Only the owner of a shared account can move or delete its messages.",
                f"ids[{position}]",
            )
    return {i: found[i] for i in dict.fromkeys(message_ids)}


def _destination(folders: Sequence[Folder], target: MoveTarget) -> Folder:
    if target.folder_id is not None:
        for folder in folders:
            if folder.id == target.folder_id:
                return folder
        raise ServiceError(
            ErrorCode.NOT_FOUND, "No such folder in the messages' account.", "to.folderId"
        )
    roles = [target.role]
    if target.role is FolderRole.ARCHIVE:
        # Gmail has no Archive: archiving is taking the INBOX label off, which a move to
        # All Mail does.
        roles.append(FolderRole.ALL)
    for role in roles:
        for folder in folders:  # selected (synced) ones first
            if folder.role is role:
                return folder
    name = target.role.value.title() if target.role else ""
    raise ServiceError(ErrorCode.NOT_FOUND, f"The account has no {name} folder.", "to.role")


async def _finish(
    session: AsyncSession,
    runtime: Runtime,
    found: dict[int, Movable],
    folder_ids: set[uuid.UUID],
) -> list[MessageRow]:
    await session.flush()
    for folder_id in sorted(folder_ids):
        await sync_repository.refresh_folder_counts(session, folder_id)
    await request_syncs(session, runtime.jobs, sorted({m.account_id for m in found.values()}))
    return await inbox_repository.rows_by_id(session, sorted(found))
