"""Asking for an account's sync: due now, queued once the transaction has committed.

The job id de-duplicates (``sync:{account}``), so a request made while a run is under way
could not queue another. It is recorded instead (``sync_requested_at``): the running run
sees at its end that the value moved, makes the account due again, and the worker queues
the next run as soon as arq lets go of the job id (``workers/sync_job.py``); the scheduler
would find it due within seconds otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory, session_scope
from core.jobs import JobQueue, enqueue_sync_after_commit
from core.models import MailAccount
from core.sync import repository


def request_sync(session: AsyncSession, jobs: JobQueue, account: MailAccount) -> None:
    """The account (a row of ``session``) syncs now, and again after a run under way."""
    now = datetime.now(UTC)
    account.next_sync_at = now
    account.sync_requested_at = now
    enqueue_sync_after_commit(session, jobs, account.id)


async def request_syncs(
    session: AsyncSession, jobs: JobQueue, account_ids: Sequence[uuid.UUID]
) -> None:
    """:func:`request_sync` for accounts known by id (one statement)."""
    await repository.mark_sync_requested(session, account_ids, datetime.now(UTC))
    for account_id in account_ids:
        enqueue_sync_after_commit(session, jobs, account_id)


async def request_folder_sync(
    session_factory: SessionFactory,
    jobs: JobQueue,
    account_id: uuid.UUID,
    folders: Sequence[str],
) -> None:
    """The server said these folders changed (IDLE): a run of them now, and a run after the
    one under way, if any (it may have passed them already). The schedule is unchanged."""
    async with session_scope(session_factory) as session:
        await repository.mark_sync_asked(session, account_id, datetime.now(UTC))
    await jobs.enqueue_sync(account_id, folders)
