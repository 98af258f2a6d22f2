"""Claims on rows: one holder of a row at a time, across all workers, with no connection
held while the holder talks to the network.

A holder claims a row (a token column and a ``claimed until`` column) in the statement that
starts its work, renews the claim every RENEW_SECONDS while it talks to a mail server, and
clears it when it is done. Unlike a session-level advisory lock, a claim needs no
connection of its own: the holder takes a pooled connection for one short step at a time,
and none while it waits on IMAP or SMTP. A worker that dies stops renewing; its claim runs
out CLAIM_SECONDS later (the same as its job leases, workers/leases.py) and the row can be
claimed again. Times are PostgreSQL's ``now()``, so workers' clocks do not matter.

Used by sync runs (a claim on the account: core/sync/claims.py), deliveries (a claim on the
outgoing message: core/sending/repository.py) and OAuth token refreshes (a claim on the
grant: core/oauth/repository.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from core.db import SessionFactory, session_scope
from core.tasks import in_background

log = logging.getLogger(__name__)

CLAIM_SECONDS = 20
RENEW_SECONDS = 5
CLAIM_TIME = timedelta(seconds=CLAIM_SECONDS)


@dataclass(frozen=True)
class RowClaim:
    """The claim columns of one table: ``token`` (uuid) and ``until`` (timestamptz)."""

    what: str  # what the claim is for, in log lines and task names: "sync", "delivery"
    id: InstrumentedAttribute[uuid.UUID]
    token: InstrumentedAttribute[uuid.UUID | None]
    until: InstrumentedAttribute[Any]

    def unclaimed(self) -> ColumnElement[bool]:
        """No live holder (never claimed, released, or run out)."""
        return or_(self.until.is_(None), self.until < func.now())

    def values(self, token: uuid.UUID) -> dict[str, object]:
        """The SET of a statement that claims the row for ``token``."""
        return {self.token.key: token, self.until.key: func.now() + CLAIM_TIME}

    async def take(self, session: AsyncSession, row_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Claim the row for ``token`` if no live holder has it (one statement)."""
        taken = await session.scalar(
            update(self.id.class_)
            .where(self.id == row_id, self.unclaimed())
            .values(**self.values(token))
            .returning(self.id)
            .execution_options(synchronize_session=False)
        )
        return taken is not None

    def cleared(self) -> dict[str, object]:
        return {self.token.key: None, self.until.key: None}

    def release_loaded(self, row: object, token: uuid.UUID) -> None:
        """Clear ``token``'s claim on ``row`` (loaded in the caller's transaction)."""
        if getattr(row, self.token.key) == token:
            for column, value in self.cleared().items():
                setattr(row, column, value)

    async def release(self, sessions: SessionFactory, row_id: uuid.UUID, token: uuid.UUID) -> None:
        """Let go of ``token``'s claim (one statement; a no-op if it is not held)."""
        async with session_scope(sessions) as session:
            await session.execute(
                update(self.id.class_)
                .where(self.id == row_id, self.token == token)
                .values(**self.cleared())
                .execution_options(synchronize_session=False)
            )

    async def _renew(self, sessions: SessionFactory, row_id: uuid.UUID, token: uuid.UUID) -> bool:
        async with session_scope(sessions) as session:
            result = await session.execute(
                update(self.id.class_)
                .where(self.id == row_id, self.token == token)
                .values({self.until.key: func.now() + CLAIM_TIME})
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))

    @contextlib.asynccontextmanager
    async def renewing(
        self, sessions: SessionFactory, row_id: uuid.UUID, token: uuid.UUID
    ) -> AsyncIterator[None]:
        """Renew the claim every RENEW_SECONDS for as long as the block runs."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(RENEW_SECONDS)
                try:
                    if not await self._renew(sessions, row_id, token):
                        log.warning("%s claim on %s: lost", self.what, row_id)
                        return
                except Exception:  # a database hiccup: the next renewal may succeed
                    log.warning("%s claim on %s: renewing it failed", self.what, row_id)

        async with in_background(renew_forever(), name=f"{self.what}-claim-{row_id}"):
            yield

    @contextlib.asynccontextmanager
    async def held(
        self, sessions: SessionFactory, row_id: uuid.UUID, token: uuid.UUID
    ) -> AsyncIterator[None]:
        """For a claim just taken: renewed while the block runs, released when it ends
        (however it ends; a release that fails leaves the claim to run out)."""
        try:
            async with self.renewing(sessions, row_id, token):
                yield
        finally:
            try:
                await self.release(sessions, row_id, token)
            except Exception:  # it runs out by itself in CLAIM_SECONDS
                log.warning("%s claim on %s: releasing it failed", self.what, row_id)

    async def claimed_among(
        self, session: AsyncSession, row_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Those of ``row_ids`` a live holder holds now."""
        if not row_ids:
            return set()
        rows = await session.scalars(
            select(self.id).where(self.id.in_(row_ids), self.until >= func.now())
        )
        return set(rows)
