"""The rows a download needs, read in one statement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts.repository import readable_by
from core.identity.viewer import Viewer
from core.models import Folder, MailAccount, Message


@dataclass(frozen=True)
class StoredPart:
    """Where a message is on the server, and the attachments the parser listed."""

    attachments: list[dict[str, Any]]
    uid: int
    folder_name: str
    uidvalidity: int | None
    account: MailAccount


async def readable_source(
    session: AsyncSession, viewer: Viewer, message_id: int
) -> StoredPart | None:
    """The message if the viewer may read it now (and it is not marked deleted)."""
    row = (
        await session.execute(
            select(Message.attachments, Message.uid, Folder.name, Folder.uidvalidity, MailAccount)
            .join(Folder, Folder.id == Message.folder_id)
            .join(MailAccount, MailAccount.id == Message.account_id)
            .where(Message.id == message_id, Message.is_deleted.is_(False), readable_by(viewer))
        )
    ).one_or_none()
    if row is None:
        return None
    return StoredPart(list(row[0] or []), int(row[1]), str(row[2]), row[3], row[4])
