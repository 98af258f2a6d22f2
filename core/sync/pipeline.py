"""Fetching, parsing and storing whole messages of one folder, as a pipeline.

Sizes first: ``RFC822.SIZE`` of every message is read before any body, so chunks are cut
by bytes as well as by count, and a message larger than the maximum message size is
fetched as its header block only (stored with ``body_downloaded`` false). While one chunk
is written, the next is parsed (in a pool process when configured) and the one after is
on the wire, unless those two chunks are large together: then the next fetch waits for
the write, so that at most two chunks' bytes are in memory. Chunks are written in order,
each in one transaction with the checkpoint that covers it, so a crash loses at most the
one parsed chunk that was waiting for its turn, and a rerun never duplicates (``ON
CONFLICT DO NOTHING`` on (folder, uid)).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from core.db import SessionFactory, session_scope
from core.mail.mailbox import FetchedMessage, MailboxOps, uid_set
from core.mail.parsing import ParsedMessage
from core.sync import repository, search_index
from core.sync.parse_pool import MessageParser
from core.sync.rows import build_rows, internal_date
from core.threads import repository as threads

Progress = Callable[[str, int, int], Awaitable[None]]
Checkpoint = Callable[[list[int]], dict[str, Any]]
# A chunk in the pipeline: its UIDs, the fetched messages, their parsing under way.
_Stage = tuple[list[int], list[FetchedMessage], "asyncio.Task[list[tuple[ParsedMessage, str]]]"]


# Ranges (a:b or a single UID) per RFC822.SIZE FETCH, which keeps the command short: a
# folder without gaps is one command (10,000 UIDs: 0.7 MB of answer), where one per
# 1,000 UIDs took ten round trips before the first message could be fetched.
SIZES_RANGES = 500
FIRST_CHUNK = 50  # the first chunk: one inbox page, committed as early as possible
_EPOCH = datetime.min.replace(tzinfo=UTC)


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def uid_sets(uids: Sequence[int], ranges: int) -> list[str]:
    """``uids`` as IMAP sets of at most ``ranges`` ranges each, in UID order."""
    runs: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if runs and uid == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], uid)
        else:
            runs.append((uid, uid))
    return [
        ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs[i : i + ranges])
        for i in range(0, len(runs), ranges)
    ]


def byte_chunks(
    uids: Sequence[int], sizes: dict[int, int], *, count: int, budget: int, max_message: int
) -> list[list[int]]:
    """``uids`` in order, cut into chunks of at most ``count`` messages and ``budget``
    bytes (a message larger than the budget is a chunk of its own); a message above
    ``max_message`` counts as its header only. UIDs of unknown size count as small."""
    parts: list[list[int]] = []
    part: list[int] = []
    used = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        cost = HEADER_ESTIMATE if size > max_message else size
        if part and (len(part) >= count or used + cost > budget):
            parts.append(part)
            part, used = [], 0
        part.append(uid)
        used += cost
    if part:
        parts.append(part)
    return parts


HEADER_ESTIMATE = 16 * 1024  # what a header-only fetch of one large message costs


class MessagePipeline:
    def __init__(
        self,
        sessions: SessionFactory,
        ops: MailboxOps,
        *,
        account_id: uuid.UUID,
        owner_id: uuid.UUID,
        folder_id: uuid.UUID,
        folder_name: str,
        chunk: int,
        parser: MessageParser,
        progress: Progress,
        chunk_bytes: int = 8 * 1024 * 1024,
        max_message_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.sessions = sessions
        self.ops = ops
        self.account_id = account_id
        self.owner_id = owner_id
        self.folder_id = folder_id
        self.folder_name = folder_name
        self.chunk = chunk
        self.chunk_bytes = chunk_bytes
        self.max_message_bytes = max_message_bytes
        self.parser = parser
        self.progress = progress
        self._sizes: dict[int, int] = {}
        self.search_deferred = 0  # rows inserted with their search vector left to fill

    async def store(
        self,
        uids: list[int],
        checkpoint: Checkpoint,
        saved: Callable[[dict[str, Any]], None],
        *,
        newest_first: bool = False,
        known: dict[int, tuple[int, str | None]] | None = None,
    ) -> int:
        """Store ``uids`` in this order (``newest_first``: by INTERNALDATE, newest first,
        which is the inbox's order, whatever the UIDs); each chunk commits with
        ``checkpoint(chunk)``, then ``saved`` hears those values. The number of rows
        inserted. The first chunk holds one inbox page, so that the page shows early.
        ``known``: sizes and dates the caller fetched already (``ops.fetch_sizes``)."""
        self._sizes = {}
        dates: dict[int, datetime] = {}
        found = dict(known or {})
        missing = [uid for uid in uids if uid not in found]
        for batch in uid_sets(missing, SIZES_RANGES):
            found.update(await self.ops.fetch_sizes(batch))
        for uid in uids:
            if uid not in found:
                continue
            size, arrived = found[uid]
            self._sizes[uid] = size
            when = internal_date(arrived) if newest_first else None
            if when is not None:
                dates[uid] = when
        if newest_first:
            # Unknown dates go last, newest UID first; ties newest UID first.
            uids = sorted(uids, key=lambda u: (u in dates, dates.get(u, _EPOCH), u), reverse=True)
        first = min(FIRST_CHUNK, self.chunk)
        parts = byte_chunks(
            uids[:first],
            self._sizes,
            count=first,
            budget=self.chunk_bytes,
            max_message=self.max_message_bytes,
        ) + byte_chunks(
            uids[first:],
            self._sizes,
            count=self.chunk,
            budget=self.chunk_bytes,
            max_message=self.max_message_bytes,
        )
        fetching = self._fetch(parts[0]) if parts else None
        previous: _Stage | None = None
        in_flight: list[asyncio.Task[Any]] = []
        done = inserted = 0
        try:
            for index, part in enumerate(parts):
                assert fetching is not None
                fetched = await fetching
                following = parts[index + 1] if index + 1 < len(parts) else None
                # Two large chunks at once would not fit the memory budget: the next one
                # is fetched once the previous is written (this one is parsing meanwhile).
                overlap = following is not None and (
                    self._bytes(part) + self._bytes(following) <= self.chunk_bytes
                )
                fetching = self._fetch(following) if following is not None and overlap else None
                parsing = asyncio.create_task(
                    self.parser.parse_for_rows([(m.raw, m.size) for m in fetched])
                )
                in_flight = [parsing] + ([fetching] if fetching is not None else [])
                if previous is not None:
                    inserted += await self._write(previous, checkpoint, saved)
                    done += len(previous[0])
                    await self.progress(self.folder_name, done, len(uids))
                if following is not None and fetching is None:
                    fetching = self._fetch(following)
                    in_flight.append(fetching)
                previous = (part, fetched, parsing)
            if previous is not None:
                inserted += await self._write(previous, checkpoint, saved)
                done += len(previous[0])
                await self.progress(self.folder_name, done, len(uids))
        finally:
            for task in in_flight:  # the run failed: the next run fetches these again
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: the error that matters is already raised
        return inserted

    def _bytes(self, part: list[int]) -> int:
        return sum(
            HEADER_ESTIMATE if size > self.max_message_bytes else size
            for size in (self._sizes.get(uid, 0) for uid in part)
        )

    def _fetch(self, part: list[int]) -> asyncio.Task[list[FetchedMessage]]:
        return asyncio.create_task(self._fetch_part(part))

    async def _fetch_part(self, part: list[int]) -> list[FetchedMessage]:
        """The chunk's messages: whole, or the header block of those above the maximum."""
        large = [u for u in part if self._sizes.get(u, 0) > self.max_message_bytes]
        small = [u for u in part if self._sizes.get(u, 0) <= self.max_message_bytes]
        fetched = await self.ops.fetch_messages(uid_set(small)) if small else []
        if large:
            fetched += await self.ops.fetch_messages(uid_set(large), headers_only=True)
        return fetched

    async def _write(
        self, stage: _Stage, checkpoint: Checkpoint, saved: Callable[[dict[str, Any]], None]
    ) -> int:
        """The chunk's rows and the checkpoint that covers them, in one transaction."""
        part, fetched, parsing = stage
        results = await parsing
        changes = checkpoint(part)
        async with session_scope(self.sessions) as session:

            async def lookup(keys: Sequence[str]) -> dict[str, uuid.UUID]:
                return await threads.thread_ids_for(session, self.owner_id, keys)

            built = await build_rows(
                fetched,
                [parsed for parsed, _ in results],
                account_id=self.account_id,
                folder_id=self.folder_id,
                lookup_threads=lookup,
                fingerprints=[print_ for _, print_ in results],
            )
            deferred = len(built.rows) >= search_index.DEFER_ROWS
            inserted = await repository.insert_messages(session, built.rows, defer_search=deferred)
            if deferred:
                self.search_deferred += inserted
            await threads.remember_thread_keys(session, self.owner_id, built.thread_keys)
            if changes:
                await repository.save_checkpoint(session, self.folder_id, changes)
        saved(changes)
        return inserted
