"""A listing's count, kept until one of its folders changes.

``inbox.totalCount`` is the number of distinct messages in a scope of folders that match
a filter: a scan of the scope. Over 270,000 messages that took 0.3 to 0.9 s, every page,
so on a big mailbox the count was the page's whole cost (2 pages/s).

Every statement that changes ``messages`` appends, through a trigger (migration 0020),
a row to ``folder_changes`` for each folder it touched; a folder's *version* is the sum
of its rows' ``changes``. The scope query reads the versions with the folders, in the same
statement. A count is stored under (folders, versions, filter) and served while the
versions read are the same; any committed change to one of those folders makes a new key.

Exact, not merely fresh: the versions are read before the count is computed, so a stored
count is never older than its key (it may be newer, when a change committed in between:
that key is already out of date, and only a request that read it gets the newer count).
Each process keeps its own cache; they agree, because the versions come from the database.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from sqlalchemy import ARRAY, Select, Uuid, any_, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.models import Folder, FolderChange

# Entries per process. A key is a scope's folder ids and versions: a few hundred bytes for
# a team's scope, so the bound is well under 10 MB.
MAX_ENTRIES = 10_000


def version_column() -> Select[int]:
    """A folder's version, as a scalar subquery correlated with ``Folder`` (an index scan
    of its change rows: one or a few once compacted)."""
    return (
        select(func.coalesce(func.sum(FolderChange.changes), 0))
        .where(FolderChange.folder_id == Folder.id)
        .correlate(Folder)
    )


@dataclass(frozen=True)
class CountKey:
    """What a count depends on: the folders, each at its version, and the filter."""

    folders: tuple[tuple[uuid.UUID, int], ...]
    filter: Hashable

    @classmethod
    def of(
        cls, folder_ids: Sequence[uuid.UUID], versions: Sequence[int], filter: Hashable
    ) -> CountKey:
        if len(folder_ids) != len(versions):
            raise ValueError("a version for every folder")
        return cls(tuple(sorted(zip(folder_ids, versions, strict=True))), filter)


class CountCache:
    """Least recently used, at most ``max_entries``. Not locked: one event loop uses it."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[CountKey, int] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, key: CountKey) -> int | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: CountKey, value: int) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# One statement: every change row of the account's folders deleted and, per folder, one
# row with their sum put back. A reader sees the rows before or after it, and the same sums
# either way. SKIP LOCKED: two compactions never wait on each other (nor deadlock); what
# one skips stays, with its sum, for the next.
_COMPACT = text(
    """
    WITH gone AS (
        DELETE FROM folder_changes
        WHERE id IN (
            SELECT id FROM folder_changes
            WHERE folder_id IN (SELECT id FROM folders WHERE account_id = :account)
            FOR UPDATE OF folder_changes SKIP LOCKED
        )
        RETURNING folder_id, changes
    )
    INSERT INTO folder_changes (folder_id, changes)
    SELECT folder_id, sum(changes) FROM gone GROUP BY folder_id
    """
).bindparams(bindparam("account", type_=Uuid))

_SUMS = (
    select(FolderChange.folder_id, func.sum(FolderChange.changes))
    .where(FolderChange.folder_id == any_(bindparam("folders", type_=ARRAY(Uuid))))
    .group_by(FolderChange.folder_id)
)


async def compact(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Fold each of the account's folders' change rows into one (a sync run that changed
    something does, when it ends): the rows a version sums stay few."""
    await session.execute(_COMPACT, {"account": account_id})


async def versions(
    connection: AsyncSession | AsyncConnection, folder_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The folders' versions (0 for one never changed)."""
    rows = await connection.execute(_SUMS, {"folders": list(folder_ids)})
    found = {folder_id: int(total) for folder_id, total in rows}
    return {folder_id: found.get(folder_id, 0) for folder_id in folder_ids}
