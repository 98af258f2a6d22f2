"""An account's folder list follows the server's: the rules of a refresh.

Folders new on the server are stored (unselected); folders gone from it are deleted with
their mail, and leave the account's labels. A synced folder renamed on the server is not
one gone and one new: it is found again under its new name, and keeps its row, selection,
checkpoint and mail.

* Same UIDVALIDITY under a new name (what a rename keeps on most servers): the row is
  renamed, nothing else changes. If the old name is there again (a server re-creating its
  special-use folders), that is a new folder.
* A server that renumbers on rename: when exactly one synced folder vanished and exactly
  one new folder appeared with as many messages, the row is renamed and keeps its old
  UIDVALIDITY, so the next sync sees a renumbering and finds the rows again by their
  fingerprints (``core.sync.rekey``): nothing is downloaded twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import repository
from core.mail.imap import Mailbox
from core.mail.mailbox import ImapCommandError, MailboxOps, MailboxState
from core.models import Folder, MailAccount

MAX_STATUS_PROBES = 50  # new folders asked about in one refresh


@dataclass(frozen=True)
class StoredFolder:
    """What the rename rule needs of a stored folder (read in an earlier transaction)."""

    name: str
    selected: bool
    uidvalidity: int | None
    server_message_count: int | None

    @classmethod
    def of(cls, folder: Folder) -> StoredFolder:
        return cls(folder.name, folder.selected, folder.uidvalidity, folder.server_message_count)


@dataclass(frozen=True)
class FolderRefresh:
    added: list[str]
    dropped_selected: list[str]  # synced folders the server no longer has
    dropped_messages: int
    renamed: dict[str, str]  # old name: new name


async def folder_statuses(
    ops: MailboxOps, stored: Sequence[StoredFolder], mailboxes: Sequence[Mailbox]
) -> dict[str, MailboxState]:
    """STATUS of what may be a renamed synced folder: the new names, and synced folders
    still listed (their name may have come back as another folder). Empty, and no
    command sent, unless a synced folder exists and new names appeared."""
    known = {f.name for f in stored}
    new = [m.name for m in mailboxes if m.name not in known][:MAX_STATUS_PROBES]
    listed = {m.name for m in mailboxes}
    synced = [f.name for f in stored if f.selected and f.uidvalidity is not None]
    if not new or not synced:
        return {}
    statuses: dict[str, MailboxState] = {}
    for name in [*new, *(n for n in synced if n in listed)]:
        try:
            statuses[name] = await ops.status(name)
        except ImapCommandError:
            continue  # not a folder we can look into: not a rename either
    return statuses


def find_renames(
    stored: Sequence[StoredFolder],
    mailboxes: Sequence[Mailbox],
    statuses: Mapping[str, MailboxState],
) -> dict[str, Mailbox]:
    """Synced folders (old name) found again under a new name (its mailbox)."""
    listed = {m.name: m for m in mailboxes}
    known = {f.name for f in stored}
    new = {name: m for name, m in listed.items() if name not in known and name in statuses}
    renames: dict[str, Mailbox] = {}
    synced = [f for f in stored if f.selected and f.uidvalidity is not None]
    for folder in synced:
        gone = folder.name not in listed
        replaced = (
            not gone
            and folder.name in statuses
            and statuses[folder.name].uidvalidity != folder.uidvalidity
        )
        if not gone and not replaced:
            continue
        same = [n for n in new if statuses[n].uidvalidity == folder.uidvalidity]
        if len(same) == 1 and listed[same[0]] not in renames.values():
            renames[folder.name] = new[same[0]]
    vanished = [f for f in synced if f.name not in listed and f.name not in renames]
    unclaimed = [m for m in new.values() if m not in renames.values()]
    if len(vanished) == 1 and len(unclaimed) == 1:  # renamed, and renumbered on the way
        folder, mailbox = vanished[0], unclaimed[0]
        count = statuses[mailbox.name].exists
        if count > 0 and count == folder.server_message_count:
            renames[folder.name] = mailbox
    return renames


async def apply_server_folders(
    session: AsyncSession,
    account: MailAccount,
    mailboxes: Sequence[Mailbox],
    statuses: Mapping[str, MailboxState] | None = None,
) -> FolderRefresh:
    """Make the stored folder list the server's (``mailboxes``, just listed); with
    ``statuses`` (:func:`folder_statuses`), renamed synced folders are followed."""
    existing = {f.name: f for f in await repository.folders_of(session, [account.id])}
    renames = find_renames(
        [StoredFolder.of(f) for f in existing.values()], mailboxes, statuses or {}
    )
    for old, mailbox in renames.items():
        folder = existing.pop(old)
        folder.name = mailbox.name
        folder.delimiter = mailbox.delimiter
        folder.attributes = list(mailbox.attributes)
        folder.role = mailbox.role
        existing[mailbox.name] = folder
        account.labels = [mailbox.name if label == old else label for label in account.labels]
    if renames:
        await session.flush()  # before a folder takes a freed name
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
        renamed={old: mailbox.name for old, mailbox in renames.items()},
    )
