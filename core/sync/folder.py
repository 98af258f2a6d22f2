"""One folder's incremental sync: new mail, backfill of past mail, flags, deletions.

Every chunk's rows and the checkpoint that covers them are committed together, so a crash
loses at most one chunk of work and a rerun never duplicates (``ON CONFLICT DO NOTHING``
on (folder, uid)).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db import SessionFactory, session_scope
from core.mail.mailbox import (
    FetchedMessage,
    FlagsItem,
    MailboxOps,
    MailboxState,
    QuickResync,
    uid_set,
)
from core.mail.parsing import ParsedMessage
from core.models import PastSync
from core.sync import repository
from core.sync.parse_pool import INLINE, MessageParser
from core.sync.repository import FolderCheckpoint
from core.sync.rows import build_rows, flag_columns
from core.threads import repository as threads

Progress = Callable[[str, int, int], Awaitable[None]]
# A chunk in the pipeline: its UIDs, the fetched messages, their parsing under way.
_Stage = tuple[list[int], list[FetchedMessage], "asyncio.Task[list[ParsedMessage]]"]

PAST_SYNC_DAYS: dict[PastSync, int | None] = {
    PastSync.NONE: 0,
    PastSync.ONE_MONTH: 31,
    PastSync.THREE_MONTHS: 92,
    PastSync.SIX_MONTHS: 183,
    PastSync.ONE_YEAR: 366,
    PastSync.ALL: None,
}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class SyncCounts:
    new: int = 0
    updated: int = 0
    removed: int = 0

    def add(self, other: SyncCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.removed += other.removed


@dataclass(frozen=True)
class SyncTuning:
    fetch_chunk: int = 100  # whole messages per UID FETCH (and per commit)
    flags_chunk: int = 250  # UIDs per FLAGS FETCH: keeps every response small
    full_flag_scan_every: timedelta = field(default=timedelta(minutes=5))
    parser: MessageParser = INLINE


@dataclass(frozen=True)
class AccountContext:
    account_id: uuid.UUID
    owner_id: uuid.UUID
    past_sync: PastSync


def imap_date(moment: datetime) -> str:
    return f"{moment.day}-{_MONTHS[moment.month - 1]}-{moment.year}"


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class FolderSync:
    def __init__(
        self,
        sessions: SessionFactory,
        ops: MailboxOps,
        account: AccountContext,
        folder: FolderCheckpoint,
        tuning: SyncTuning,
        progress: Progress,
    ) -> None:
        self.sessions = sessions
        self.ops = ops
        self.account = account
        self.folder = folder
        self.tuning = tuning
        self.progress = progress
        self.counts = SyncCounts()
        # Rows parked by a UIDVALIDITY change wait to be re-keyed by Message-ID.
        self.rebuilding = False

    async def run(self) -> SyncCounts:
        folder = self.folder
        if await self._unchanged():
            return self.counts
        quick: QuickResync | None = None
        if self.ops.qresync and folder.uidvalidity and folder.highest_modseq:
            quick = await self.ops.select_since(
                folder.name, folder.uidvalidity, folder.highest_modseq
            )
            state = quick.state
        else:
            state = await self.ops.select(folder.name)
        if folder.uidvalidity != state.uidvalidity:
            quick = None  # the server ignored what we knew: everything is rebuilt
            await self._start_index(state, rebuild=folder.uidvalidity is not None)
        if self.folder.backfill_before_uid is not None:  # a rebuild is always backfilled
            async with self.sessions() as session:
                self.rebuilding = await repository.has_parked(session, self.folder.id)
        await self._fetch_new()
        await self._backfill()
        if quick is not None:
            await self._apply_flags(quick.changed)
            await self._delete_ranges(quick.vanished)
        else:
            await self._sync_flags(state)
            await self._sync_deletions()
        await self._finish(state)
        return self.counts

    async def _delete_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """QRESYNC's VANISHED (EARLIER): expunged since our MODSEQ."""
        if not ranges:
            return
        async with session_scope(self.sessions) as session:
            self.counts.removed += await repository.delete_uid_ranges(
                session, self.folder.id, ranges
            )

    async def _unchanged(self) -> bool:
        """One STATUS round trip decides whether the folder needs anything at all."""
        folder = self.folder
        if folder.uidvalidity is None or folder.backfill_before_uid is not None:
            return False
        status = await self.ops.status(folder.name)
        same = (
            status.uidvalidity == folder.uidvalidity
            and status.uidnext == folder.uidnext
            and status.exists == folder.server_message_count
        )
        if self.ops.condstore:
            return same and status.highestmodseq == folder.highest_modseq
        return same and not self._flag_scan_due()

    def _flag_scan_due(self) -> bool:
        last = self.folder.last_full_flag_scan_at
        return last is None or datetime.now(UTC) - last >= self.tuning.full_flag_scan_every

    async def _start_index(self, state: MailboxState, *, rebuild: bool) -> None:
        """A first sync, or a new UIDVALIDITY: every server UID below UIDNEXT is past mail."""
        top = (state.uidnext or (max(await self.ops.uid_search("ALL"), default=0) + 1)) - 1
        window = PAST_SYNC_DAYS[self.account.past_sync]
        changes: dict[str, Any] = {
            "uidvalidity": state.uidvalidity,
            "highest_uid": top,
            "highest_modseq": state.highestmodseq,
            # A rebuild always runs the backfill: it re-keys or drops every parked row.
            "backfill_before_uid": top + 1 if window != 0 or rebuild else None,
        }
        async with session_scope(self.sessions) as session:
            if rebuild:
                await repository.park_uids_for_rematch(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, changes)
        self.folder = replace(self.folder, **changes)

    async def _fetch_new(self) -> None:
        highest = self.folder.highest_uid
        # "n:*" always matches the last message, even below n: filter.
        uids = [u for u in await self.ops.uid_search(f"UID {highest + 1}:*") if u > highest]
        uids.sort()
        await self._store_chunks(uids, lambda chunk: {"highest_uid": max(chunk)})

    async def _backfill(self) -> None:
        before = self.folder.backfill_before_uid
        if before is None:
            return
        if before > 1:
            criteria = f"UID 1:{before - 1}"
            since = await self._backfill_since()
            if since is not None:
                criteria += f" SINCE {imap_date(since)}"
            uids = sorted(
                (u for u in await self.ops.uid_search(criteria) if u < before), reverse=True
            )
        else:
            uids = []
        # Newest first, so that the inbox fills from the top.
        await self._store_chunks(uids, lambda chunk: {"backfill_before_uid": min(chunk)})
        async with session_scope(self.sessions) as session:
            self.counts.removed += await repository.drop_parked(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, {"backfill_before_uid": None})
        self.folder = replace(self.folder, backfill_before_uid=None)

    async def _backfill_since(self) -> datetime | None:
        """The start of the past-sync window; a rebuild reaches back to the oldest row it
        must re-find as well (None: no limit)."""
        days = PAST_SYNC_DAYS[self.account.past_sync]
        if days is None:
            return None
        window_start = datetime.now(UTC) - timedelta(days=days)
        async with self.sessions() as session:
            oldest_parked = await repository.oldest_parked_date(session, self.folder.id)
        if oldest_parked is not None:
            return min(window_start, oldest_parked - timedelta(days=1))
        return window_start

    async def _store_chunks(
        self, uids: list[int], checkpoint: Callable[[list[int]], dict[str, Any]]
    ) -> None:
        """Fetch, parse and store ``uids`` in chunks, as a pipeline: while one chunk is
        written, the next is parsed (in a pool process when configured) and the one after
        is on the wire. Chunks are written in order, each with its checkpoint, so a crash
        loses at most the one parsed chunk that was waiting for its turn."""
        chunks = _chunks(uids, self.tuning.fetch_chunk)
        fetching = self._fetch(chunks[0]) if chunks else None
        previous: _Stage | None = None
        in_flight: list[asyncio.Task[Any]] = []
        done = 0
        try:
            for index, chunk in enumerate(chunks):
                assert fetching is not None
                fetched = await fetching
                fetching = self._fetch(chunks[index + 1]) if index + 1 < len(chunks) else None
                parsing = asyncio.create_task(self.tuning.parser.parse([m.raw for m in fetched]))
                in_flight = [parsing] + ([fetching] if fetching is not None else [])
                if previous is not None:
                    done += await self._write_parsed(previous, checkpoint)
                    await self.progress(self.folder.name, done, len(uids))
                previous = (chunk, fetched, parsing)
            if previous is not None:
                done += await self._write_parsed(previous, checkpoint)
                await self.progress(self.folder.name, done, len(uids))
        finally:
            for task in in_flight:  # the run failed: the next run fetches these again
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: the error that matters is already raised

    async def _save(self, changes: dict[str, Any]) -> None:
        """Commit checkpoint ``changes`` on their own, then hold them in ``self.folder``."""
        async with session_scope(self.sessions) as session:
            await repository.save_checkpoint(session, self.folder.id, changes)
        self.folder = replace(self.folder, **changes)

    async def _write_parsed(
        self, stage: _Stage, checkpoint: Callable[[list[int]], dict[str, Any]]
    ) -> int:
        chunk, fetched, parsing = stage
        await self._write_chunk(fetched, await parsing, checkpoint(chunk))
        return len(chunk)

    def _fetch(self, chunk: list[int]) -> asyncio.Task[list[FetchedMessage]]:
        return asyncio.create_task(self.ops.fetch_messages(uid_set(chunk)))

    async def _write_chunk(
        self,
        fetched: list[FetchedMessage],
        parsed: list[ParsedMessage],
        checkpoint: dict[str, Any],
    ) -> None:
        """The chunk's rows and the checkpoint that covers them, in one transaction."""
        async with session_scope(self.sessions) as session:

            async def lookup(keys: Sequence[str]) -> dict[str, uuid.UUID]:
                return await threads.thread_ids_for(session, self.account.owner_id, keys)

            built = await build_rows(
                fetched,
                parsed,
                account_id=self.account.account_id,
                folder_id=self.folder.id,
                lookup_threads=lookup,
            )
            if self.rebuilding:
                by_uid = {row["uid"]: row for row in built.rows}
                known = {mid: by_uid[uid] for uid, mid in built.message_ids.items()}
                await repository.rematch_parked(session, self.folder.id, known)
            self.counts.new += await repository.insert_messages(session, built.rows)
            await threads.remember_thread_keys(session, self.account.owner_id, built.thread_keys)
            await repository.save_checkpoint(session, self.folder.id, checkpoint)
        self.folder = replace(self.folder, **checkpoint)

    async def _sync_flags(self, state: MailboxState) -> None:
        folder = self.folder
        if self.ops.condstore and folder.highest_modseq is not None:
            if state.highestmodseq == folder.highest_modseq or folder.highest_uid == 0:
                return
            changed = await self.ops.fetch_flags(
                f"1:{folder.highest_uid}", changed_since=folder.highest_modseq
            )
            await self._apply_flags(changed)
            return
        if not self._flag_scan_due():
            return
        async with self.sessions() as session:
            uids = sorted(await repository.stored_uids(session, folder.id))
        items: list[FlagsItem] = []
        for chunk in _chunks(uids, self.tuning.flags_chunk):
            items.extend(await self.ops.fetch_flags(uid_set(chunk)))
        await self._apply_flags(items)
        await self._save({"last_full_flag_scan_at": datetime.now(UTC)})

    async def _apply_flags(self, flag_items: Sequence[FlagsItem]) -> None:
        if not flag_items:
            return
        async with session_scope(self.sessions) as session:
            stored = await repository.stored_flags(
                session, self.folder.id, [i.uid for i in flag_items]
            )
            changes = []
            for item in flag_items:
                wanted = flag_columns(item.flags)
                if item.uid in stored and stored[item.uid] != wanted:
                    changes.append((item.uid, *wanted, item.modseq))
            await repository.update_flags(session, self.folder.id, changes)
        self.counts.updated += len(changes)

    async def _sync_deletions(self) -> None:
        """RFC 4549 4.3.1: what the server no longer has among the UIDs we stored."""
        folder = self.folder
        if folder.highest_uid == 0:
            return
        on_server = set(await self.ops.uid_search(f"UID 1:{folder.highest_uid}"))
        async with session_scope(self.sessions) as session:
            stored = await repository.stored_uids(session, folder.id)
            gone = sorted(stored - on_server)
            self.counts.removed += await repository.delete_uids(session, folder.id, gone)

    async def _finish(self, state: MailboxState) -> None:
        changes: dict[str, Any] = {
            "uidnext": state.uidnext,
            "server_message_count": state.exists,
            "last_synced_at": datetime.now(UTC),
        }
        if state.highestmodseq is not None:
            changes["highest_modseq"] = state.highestmodseq
        async with session_scope(self.sessions) as session:
            await repository.refresh_folder_counts(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, changes)
        self.folder = replace(self.folder, **changes)
