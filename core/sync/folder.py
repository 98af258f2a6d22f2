"""One folder's incremental sync: new mail, backfill of past mail, flags, deletions, and a
self-check that heals any difference from the server.

No step trusts a single server answer that buggy servers get wrong: new mail is found by
``UID FETCH <highest+1>:*`` (never ``UID SEARCH UID n:*``, which some servers answer as if
``n:*`` were positions), a missing UIDNEXT in SELECT is taken from STATUS, and after each
run the stored count is checked against the server's: when they differ the folder is
reconciled by UIDs and flags alone. A renumbered folder (new UIDVALIDITY) keeps its rows,
found again by content fingerprint or Message-ID (``core.sync.rekey``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db import SessionFactory, session_scope
from core.mail.mailbox import FlagsItem, HeaderItem, MailboxOps, MailboxState, QuickResync, uid_set
from core.models import PastSync
from core.sync import repository
from core.sync.flags import flag_columns
from core.sync.parse_pool import INLINE, MessageParser
from core.sync.pipeline import MessagePipeline, chunks
from core.sync.rekey import match_parked
from core.sync.repository import FolderCheckpoint
from core.sync.rows import internal_date

Progress = Callable[[str, int, int], Awaitable[None]]

PAST_SYNC_DAYS: dict[PastSync, int | None] = {
    PastSync.NONE: 0,
    PastSync.ONE_MONTH: 31,
    PastSync.THREE_MONTHS: 92,
    PastSync.SIX_MONTHS: 183,
    PastSync.ONE_YEAR: 366,
    PastSync.ALL: None,
}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
HEADERS_CHUNK = 500  # messages per header-only FETCH when re-finding renumbered rows


@dataclass
class SyncCounts:
    new: int = 0
    updated: int = 0
    removed: int = 0
    search_deferred: int = 0  # new rows whose search vectors wait (core/sync/search_index)

    @property
    def changed_rows(self) -> bool:
        return bool(self.new or self.updated or self.removed)

    def add(self, other: SyncCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.removed += other.removed
        self.search_deferred += other.search_deferred


@dataclass(frozen=True)
class SyncTuning:
    fetch_chunk: int = 250  # whole messages per UID FETCH (and per commit)
    flags_chunk: int = 250  # UIDs per FLAGS FETCH: keeps every response small
    full_flag_scan_every: timedelta = field(default=timedelta(minutes=5))
    parser: MessageParser = INLINE
    chunk_bytes: int = 8 * 1024 * 1024  # and at most this many bytes per chunk
    max_message_bytes: int = 10 * 1024 * 1024  # larger: headers only, body not downloaded


@dataclass(frozen=True)
class AccountContext:
    account_id: uuid.UUID
    owner_id: uuid.UUID
    past_sync: PastSync


def imap_date(moment: datetime) -> str:
    return f"{moment.day}-{_MONTHS[moment.month - 1]}-{moment.year}"


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
        self.counts = SyncCounts()
        self.pipeline = MessagePipeline(
            sessions,
            ops,
            account_id=account.account_id,
            owner_id=account.owner_id,
            folder_id=folder.id,
            folder_name=folder.name,
            chunk=tuning.fetch_chunk,
            parser=tuning.parser,
            progress=progress,
            chunk_bytes=tuning.chunk_bytes,
            max_message_bytes=tuning.max_message_bytes,
        )

    async def run(self) -> SyncCounts:
        folder = self.folder
        status: MailboxState | None = None
        if folder.uidvalidity is not None and folder.backfill_before_uid is None:
            status = await self.ops.status(folder.name)
            if self._unchanged(status):
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
            quick = None  # the server ignored what we knew: every UID is new to us
            await self._start_index(state, renumbered=folder.uidvalidity is not None)
        await self._refind_parked(state)
        await self._fetch_new(state)
        await self._backfill()
        if quick is not None:
            await self._apply_flags(quick.changed)
            await self._delete_ranges(quick.vanished)
        else:
            await self._sync_flags(state)
            await self._sync_deletions()
        await self._finish(state, status)
        return self.counts

    # -- deciding ---------------------------------------------------------------------------

    def _unchanged(self, status: MailboxState) -> bool:
        """One STATUS round trip decides whether the folder needs anything at all: the
        server's numbers are those of the last run, and the store still adds up to them."""
        folder = self.folder
        same = (
            status.uidvalidity == folder.uidvalidity
            and status.uidnext == folder.uidnext
            and status.exists == folder.server_message_count
            and folder.unsynced_count is not None
            and folder.stored_count + folder.unsynced_count == status.exists
        )
        if self.ops.condstore:
            return same and status.highestmodseq == folder.highest_modseq
        return same and not self._flag_scan_due()

    def _flag_scan_due(self) -> bool:
        last = self.folder.last_full_flag_scan_at
        return last is None or datetime.now(UTC) - last >= self.tuning.full_flag_scan_every

    def _wanted(self, uid: int, arrived: str | None) -> bool:
        """Whether a server message belongs in the store: mail that arrived after the folder
        was first indexed always does; older mail when it is inside the past-sync window."""
        folder = self.folder
        if folder.window_start is None:
            return True
        if folder.window_end_uid is not None and uid >= folder.window_end_uid:
            return True
        when = internal_date(arrived)
        return when is None or when >= folder.window_start

    # -- checkpoints -------------------------------------------------------------------------

    def _saved(self, changes: dict[str, Any]) -> None:
        self.folder = replace(self.folder, **changes)

    async def _save(self, changes: dict[str, Any]) -> None:
        """Commit checkpoint ``changes`` on their own, then hold them in ``self.folder``."""
        async with session_scope(self.sessions) as session:
            await repository.save_checkpoint(session, self.folder.id, changes)
        self._saved(changes)

    async def _store(
        self,
        uids: list[int],
        checkpoint: Callable[[list[int]], Any],
        *,
        newest_first: bool = False,
        known: dict[int, tuple[int, str | None]] | None = None,
    ) -> None:
        before = self.pipeline.search_deferred
        self.counts.new += await self.pipeline.store(
            uids, checkpoint, self._saved, newest_first=newest_first, known=known
        )
        self.counts.search_deferred += self.pipeline.search_deferred - before

    # -- the steps ---------------------------------------------------------------------------

    async def _start_index(self, state: MailboxState, *, renumbered: bool) -> None:
        """A first sync, or a new UIDVALIDITY: every server UID below UIDNEXT is past mail.
        A renumbered folder parks its rows (negated UIDs) to be found again."""
        top = (state.uidnext or (await self._last_uid(state)) + 1) - 1
        days = PAST_SYNC_DAYS[self.account.past_sync]
        changes: dict[str, Any] = {
            "uidvalidity": state.uidvalidity,
            "highest_uid": top,
            "highest_modseq": state.highestmodseq,
        }
        if renumbered:  # the same window; the parked rows tell what was stored
            start = self.folder.window_start
            changes |= {"backfill_before_uid": None, "unsynced_count": None}
        else:
            start = None if days is None else datetime.now(UTC) - timedelta(days=days)
            changes |= {
                "window_start": start,
                "backfill_before_uid": top + 1 if days != 0 else None,
                # Counted by the reconcile the self-check runs once this run ends.
                "unsynced_count": 0 if start is None else None,
            }
        changes["window_end_uid"] = top + 1 if start is not None else None
        async with session_scope(self.sessions) as session:
            if renumbered:
                await repository.park_uids_for_rematch(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, changes)
        self._saved(changes)

    async def _last_uid(self, state: MailboxState) -> int:
        if state.exists == 0:
            return 0
        return max(await self.ops.fetch_uids("*"), default=0)

    async def _refind_parked(self, state: MailboxState) -> None:
        """Rows parked by a renumbering are matched to the server's messages by their
        header lines and size (no bodies); server mail that matches none and belongs in the
        store is fetched as new; parked rows that match nothing are gone. Resumable: each
        step commits, and what is stored already is not looked at again."""
        async with self.sessions() as session:
            parked = await repository.parked_rows(session, self.folder.id)
            stored = await repository.stored_uids(session, self.folder.id) if parked else set()
        if not parked:
            return
        on_server = await self.ops.fetch_uids("1:*") if state.exists else []
        candidates = sorted(set(on_server) - stored)
        items: list[HeaderItem] = []
        for part in chunks(candidates, HEADERS_CHUNK):
            items.extend(await self.ops.fetch_headers(uid_set(part)))
        matched = match_parked(parked, items)
        async with session_scope(self.sessions) as session:
            await repository.rekey_parked(session, matched.rekeys)
        wanted = [i.uid for i in matched.unmatched if self._wanted(i.uid, i.internal_date)]
        await self._store(sorted(wanted, reverse=True), lambda chunk: {})
        async with session_scope(self.sessions) as session:
            self.counts.removed += await repository.drop_parked(session, self.folder.id)
            await repository.save_checkpoint(
                session, self.folder.id, {"unsynced_count": len(matched.unmatched) - len(wanted)}
            )
        self._saved({"unsynced_count": len(matched.unmatched) - len(wanted)})

    async def _fetch_new(self, state: MailboxState) -> None:
        if state.exists == 0:
            return
        highest = self.folder.highest_uid
        # "n:*" always matches the last message, even below n: filter.
        uids = sorted(u for u in await self.ops.fetch_uids(f"{highest + 1}:*") if u > highest)
        await self._store(uids, lambda chunk: {"highest_uid": max(chunk)})

    async def _backfill(self) -> None:
        """Past mail inside the window, newest first, so that the inbox fills from the top.
        SEARCH is only asked for dates; the UID range is applied here."""
        before = self.folder.backfill_before_uid
        if before is None:
            return
        uids: list[int] = []
        known: dict[int, tuple[int, str | None]] = {}
        if before > 1:
            start = self.folder.window_start
            if start is None:  # all of it: the UIDs come with the sizes and dates to order by
                known = await self.ops.fetch_sizes(f"1:{before - 1}")
                found = list(known)
            else:
                found = await self.ops.uid_search(f"SINCE {imap_date(start)}")
            async with self.sessions() as session:
                stored = await repository.stored_uids(session, self.folder.id)
            uids = sorted((u for u in set(found) - stored if u < before), reverse=True)
        # Stored newest first by date, so UIDs are not stored in order: the checkpoint is
        # the lowest UID above which everything is stored (a rerun skips what is stored).
        remaining = set(uids)

        def checkpoint(chunk: list[int]) -> dict[str, Any]:
            remaining.difference_update(chunk)
            return {"backfill_before_uid": max(remaining) + 1 if remaining else min(uids)}

        await self._store(uids, checkpoint, newest_first=True, known=known)
        await self._save({"backfill_before_uid": None})

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
        for part in chunks(uids, self.tuning.flags_chunk):
            items.extend(await self.ops.fetch_flags(uid_set(part)))
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
                    changes.append((item.uid, wanted, item.modseq))
            await repository.update_flags(session, self.folder.id, changes)
        self.counts.updated += len(changes)

    async def _delete_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """QRESYNC's VANISHED (EARLIER): expunged since our MODSEQ."""
        if not ranges:
            return
        async with session_scope(self.sessions) as session:
            self.counts.removed += await repository.delete_uid_ranges(
                session, self.folder.id, ranges
            )

    async def _sync_deletions(self) -> None:
        """RFC 4549 4.3.1: what the server no longer has among the UIDs we stored."""
        folder = self.folder
        if folder.highest_uid == 0:
            return
        on_server = set(await self.ops.fetch_uids(f"1:{folder.highest_uid}"))
        async with session_scope(self.sessions) as session:
            stored = await repository.stored_uids(session, folder.id)
            gone = sorted(stored - on_server)
            self.counts.removed += await repository.delete_uids(session, folder.id, gone)

    async def _finish(self, state: MailboxState, status: MailboxState | None) -> None:
        uidnext = state.uidnext
        if uidnext is None:  # a SELECT without UIDNEXT (RFC 3501 allows it): STATUS has it
            uidnext = (status or await self.ops.status(self.folder.name)).uidnext
        changes: dict[str, Any] = {
            "uidnext": uidnext,
            "server_message_count": state.exists,
            "last_synced_at": datetime.now(UTC),
        }
        if state.highestmodseq is not None:
            changes["highest_modseq"] = state.highestmodseq
        async with session_scope(self.sessions) as session:
            stored = await repository.refresh_folder_counts(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, changes)
        self._saved(changes)
        unsynced = self.folder.unsynced_count
        if unsynced is None or stored + unsynced != state.exists:
            await self._reconcile(state)

    async def _reconcile(self, state: MailboxState) -> None:
        """The self-check found the store and the server apart: compare them by UIDs and
        flags (no bodies), fetch what is missing, remove what is gone, fix the flags."""
        items = await self.ops.fetch_flags("1:*", dates=True) if state.exists else []
        on_server = {item.uid: item for item in items}
        async with session_scope(self.sessions) as session:
            stored = await repository.stored_uids(session, self.folder.id)
            gone = sorted(stored - set(on_server))
            self.counts.removed += await repository.delete_uids(session, self.folder.id, gone)
        await self._apply_flags([item for uid, item in on_server.items() if uid in stored])
        missing = sorted(set(on_server) - stored, reverse=True)
        wanted = [u for u in missing if self._wanted(u, on_server[u].internal_date)]
        await self._store(
            wanted, lambda chunk: {"highest_uid": max(self.folder.highest_uid, *chunk)}
        )
        changes = {"unsynced_count": len(missing) - len(wanted), "server_message_count": len(items)}
        async with session_scope(self.sessions) as session:
            await repository.refresh_folder_counts(session, self.folder.id)
            await repository.save_checkpoint(session, self.folder.id, changes)
        self._saved(changes)
