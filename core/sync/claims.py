"""The sync claim: one run of an account at a time, across all workers.

A run claims the account's row (``sync_claim``, ``sync_claimed_until``) in the statement
that starts it, renews the claim every RENEW_SECONDS while it talks to the mail server, and
clears it in the statement that ends it. Unlike a session-level advisory lock, a claim needs
no connection of its own: a running sync holds at most one pooled connection, for one step
at a time, and none while it waits on the network. A worker that dies stops renewing; its
claim runs out CLAIM_SECONDS later (the same as its job leases, workers/leases.py), and the
account can be synced again. Times are PostgreSQL's ``now()``, so workers' clocks do not
matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from core.db import SessionFactory, session_scope
from core.models import MailAccount

log = logging.getLogger(__name__)

CLAIM_SECONDS = 20
RENEW_SECONDS = 5
CLAIM_TIME = timedelta(seconds=CLAIM_SECONDS)


def unclaimed() -> ColumnElement[bool]:
    """No live run holds the account (never claimed, released, or run out)."""
    return or_(
        MailAccount.sync_claimed_until.is_(None), MailAccount.sync_claimed_until < func.now()
    )


def claim_values(token: uuid.UUID) -> dict[str, object]:
    return {"sync_claim": token, "sync_claimed_until": func.now() + CLAIM_TIME}


def release(account: MailAccount, token: uuid.UUID) -> None:
    """Clear ``token``'s claim on ``account`` (loaded in the caller's transaction)."""
    if account.sync_claim == token:
        account.sync_claim = None
        account.sync_claimed_until = None


async def release_claim(sessions: SessionFactory, account_id: uuid.UUID, token: uuid.UUID) -> None:
    """A run that ends without its closing write (paused meanwhile, cancelled) lets go."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id, MailAccount.sync_claim == token)
            .values(sync_claim=None, sync_claimed_until=None)
            .execution_options(synchronize_session=False)
        )


async def _renew(sessions: SessionFactory, account_id: uuid.UUID, token: uuid.UUID) -> bool:
    async with session_scope(sessions) as session:
        result = await session.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id, MailAccount.sync_claim == token)
            .values(sync_claimed_until=func.now() + CLAIM_TIME)
            .execution_options(synchronize_session=False)
        )
    return bool(getattr(result, "rowcount", 0))


@contextlib.asynccontextmanager
async def renewing(
    sessions: SessionFactory, account_id: uuid.UUID, token: uuid.UUID
) -> AsyncIterator[None]:
    """Renew the claim every RENEW_SECONDS for as long as the block runs."""

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                if not await _renew(sessions, account_id, token):
                    log.warning("account %s: the sync claim was lost", account_id)
                    return
            except Exception:  # a database hiccup: the next renewal may succeed
                log.warning("account %s: renewing the sync claim failed", account_id)

    task = asyncio.create_task(renew_forever(), name=f"sync-claim-{account_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def claimed_among(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``account_ids`` a live run holds now."""
    if not account_ids:
        return set()
    rows = await session.scalars(
        select(MailAccount.id).where(
            MailAccount.id.in_(account_ids), MailAccount.sync_claimed_until >= func.now()
        )
    )
    return set(rows)
