"""Writing flags changed in the inbox (markMessages) back to the IMAP server.

Runs at the start of an account's sync run, inside its lock and IMAP session, before any
folder is read: so the run that follows sees the server already agreeing, and a failure
is retried and reported like any other sync failure (backoff, ``lastError``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from core.db import SessionFactory, session_scope
from core.mail.mailbox import MailboxOps, uid_set
from core.sync import repository
from core.sync.repository import FolderCheckpoint, PendingFlags

_FLAGS = (("is_read", "(\\Seen)"), ("is_flagged", "(\\Flagged)"))


async def push_local_flags(
    sessions: SessionFactory,
    ops: MailboxOps,
    account_id: uuid.UUID,
    folders: Sequence[FolderCheckpoint],
) -> int:
    """UID STORE every locally changed flag (only the flags that changed); the number of
    messages written back."""
    async with sessions() as session:
        pending = await repository.pending_flags(session, account_id)
    if not pending:
        return 0
    by_folder: dict[uuid.UUID, list[PendingFlags]] = defaultdict(list)
    for row in pending:
        by_folder[row.folder_id].append(row)
    written = 0
    for folder in folders:
        rows = by_folder.get(folder.id)
        if not rows:
            continue
        state = await ops.select(folder.name)
        if state.uidvalidity != folder.uidvalidity:
            # Renumbered on the server: these UIDs now name other messages. The folder's
            # sync re-keys the rows by Message-ID; the marks stay pending for the next run.
            continue
        for attribute, flag in _FLAGS:
            on = [r.uid for r in rows if getattr(r, attribute) is True]
            off = [r.uid for r in rows if getattr(r, attribute) is False]
            if on:
                await ops.store_flags(uid_set(on), add=True, flags=flag)
            if off:
                await ops.store_flags(uid_set(off), add=False, flags=flag)
        async with session_scope(sessions) as session:
            await repository.clear_pending(session, rows)
        written += len(rows)
    return written
