"""Fetching, parsing and storing whole messages of one folder, as a pipeline.

While one chunk is written, the next is parsed (in a pool process when configured) and
the one after is on the wire. Chunks are written in order, each in one transaction with
the checkpoint that covers it, so a crash loses at most the one parsed chunk that was
waiting for its turn, and a rerun never duplicates (``ON CONFLICT DO NOTHING`` on
(folder, uid)).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.db import SessionFactory, session_scope
from core.mail.mailbox import FetchedMessage, MailboxOps, uid_set
from core.mail.parsing import ParsedMessage
from core.sync import repository
from core.sync.parse_pool import MessageParser
from core.sync.rows import build_rows
from core.threads import repository as threads

Progress = Callable[[str, int, int], Awaitable[None]]
Checkpoint = Callable[[list[int]], dict[str, Any]]
# A chunk in the pipeline: its UIDs, the fetched messages, their parsing under way.
_Stage = tuple[list[int], list[FetchedMessage], "asyncio.Task[list[ParsedMessage]]"]


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


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
    ) -> None:
        self.sessions = sessions
        self.ops = ops
        self.account_id = account_id
        self.owner_id = owner_id
        self.folder_id = folder_id
        self.folder_name = folder_name
        self.chunk = chunk
        self.parser = parser
        self.progress = progress

    async def store(
        self,
        uids: list[int],
        checkpoint: Checkpoint,
        saved: Callable[[dict[str, Any]], None],
    ) -> int:
        """Store ``uids`` in this order; each chunk commits with ``checkpoint(chunk)``,
        then ``saved`` hears those values. The number of rows inserted."""
        parts = chunks(uids, self.chunk)
        fetching = self._fetch(parts[0]) if parts else None
        previous: _Stage | None = None
        in_flight: list[asyncio.Task[Any]] = []
        done = inserted = 0
        try:
            for index, part in enumerate(parts):
                assert fetching is not None
                fetched = await fetching
                fetching = self._fetch(parts[index + 1]) if index + 1 < len(parts) else None
                parsing = asyncio.create_task(self.parser.parse([m.raw for m in fetched]))
                in_flight = [parsing] + ([fetching] if fetching is not None else [])
                if previous is not None:
                    inserted += await self._write(previous, checkpoint, saved)
                    done += len(previous[0])
                    await self.progress(self.folder_name, done, len(uids))
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

    def _fetch(self, part: list[int]) -> asyncio.Task[list[FetchedMessage]]:
        return asyncio.create_task(self.ops.fetch_messages(uid_set(part)))

    async def _write(
        self, stage: _Stage, checkpoint: Checkpoint, saved: Callable[[dict[str, Any]], None]
    ) -> int:
        """The chunk's rows and the checkpoint that covers them, in one transaction."""
        part, fetched, parsing = stage
        parsed = await parsing
        changes = checkpoint(part)
        async with session_scope(self.sessions) as session:

            async def lookup(keys: Sequence[str]) -> dict[str, uuid.UUID]:
                return await threads.thread_ids_for(session, self.owner_id, keys)

            built = await build_rows(
                fetched,
                parsed,
                account_id=self.account_id,
                folder_id=self.folder_id,
                lookup_threads=lookup,
            )
            inserted = await repository.insert_messages(session, built.rows)
            await threads.remember_thread_keys(session, self.owner_id, built.thread_keys)
            if changes:
                await repository.save_checkpoint(session, self.folder_id, changes)
        saved(changes)
        return inserted
