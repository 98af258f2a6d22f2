"""An account's folder list follows the server's: the rules of a refresh.

Folders new on the server are stored (unselected); folders gone from it are deleted with
their mail, and leave the account's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import repository
from core.mail.imap import Mailbox
from core.models import MailAccount


@dataclass(frozen=True)
class FolderRefresh:
    added: list[str]
    dropped_selected: list[str]  # synced folders the server no longer has
    dropped_messages: int


async def apply_server_folders(
    session: AsyncSession, account: MailAccount, mailboxes: Sequence[Mailbox]
) -> FolderRefresh:
    """Make the stored folder list the server's (``mailboxes``, just listed)."""
    existing = {f.name: f for f in await repository.folders_of(session, [account.id])}
    on_server = {m.name for m in mailboxes}
    new = [m for m in mailboxes if m.name not in existing]
    if new:
        await repository.add_folders(session, account.id, new)
    gone = [f for name, f in existing.items() if name not in on_server]
    dropped = 0
    if gone:
        gone_ids = [f.id for f in gone]
        dropped = await repository.count_messages_in(session, gone_ids)
        await repository.delete_folders(session, gone_ids)
        account.labels = [label for label in account.labels if label in on_server]
        await session.flush()
    return FolderRefresh(
        added=[m.name for m in new],
        dropped_selected=[f.name for f in gone if f.selected],
        dropped_messages=dropped,
    )
