"""Search vectors filled after the rows of a bulk sync are visible.

A message's search vector (``to_tsvector`` over subject, addresses and body, and its GIN
index entry) was about 2 of PostgreSQL's 4 seconds per 10,000 rows of a first sync, spent
while the user waits for the mailbox to appear. A chunk of at least :data:`DEFER_ROWS` rows
is therefore inserted with ``mailsync.defer_search_vector`` on, which the insert trigger
of migration 0019 respects, and :func:`catch_up` fills those vectors once the run has
published its ``syncCompleted``. New mail of an ordinary run (a few messages) is indexed on
insert as before.

Nothing is lost on a crash: a waiting row is one whose ``search_vector`` is NULL (a partial
index finds them), every run checks for such rows when it starts and catches up after it
succeeds, and each batch is its own short transaction. Search finds waiting rows all the
same, by computing their vector on the fly (core/inbox/repository.matches), and
``MailAccount.searchBacklog`` shows how many there are.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import ARRAY, BigInteger, Select, Update, any_, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import session_scope
from core.models import Message
from core.models.message import computed_search_vector

log = logging.getLogger(__name__)

DEFER_ROWS = 20  # a chunk with at least this many rows defers its vectors
BATCH_ROWS = 500  # rows per catch-up transaction: each holds its row locks briefly

_WAITING = Message.search_vector.is_(None)
_COUNTS_UNCHANGED = text("SELECT set_config('mailsync.counts_unchanged', 'on', true)")


def waiting_rows(account_id: uuid.UUID) -> Select[int]:
    """The ids of the account's rows whose search vectors wait (the partial index)."""
    return select(Message.id).where(Message.account_id == account_id, _WAITING)


def _batch(account_id: uuid.UUID, limit: int) -> Update:
    # SKIP LOCKED: two processes catching up on one account take different rows. The ids
    # are one array (an InitPlan, run once), so the UPDATE is a primary-key scan whatever
    # the statistics say: right after a bulk sync they say there are no waiting rows, and
    # an IN (subquery) was planned as a nested loop that ran the subquery once per waiting
    # row of every account (minutes for 68,000 rows).
    waiting = (
        waiting_rows(account_id).limit(limit).with_for_update(skip_locked=True).scalar_subquery()
    )
    return (
        update(Message)
        # No second "IS NULL" here: the rows are locked, and that condition would let the
        # planner scan the partial index (all waiting rows) for the batch's ids.
        .where(Message.id == any_(func.array(waiting, type_=ARRAY(BigInteger))))
        .values(search_vector=computed_search_vector(Message))
        .execution_options(synchronize_session=False)
    )


async def catch_up(
    sessions: async_sessionmaker[AsyncSession],
    account_id: uuid.UUID,
    *,
    batch: int = BATCH_ROWS,
) -> int:
    """Fill the account's waiting search vectors, a batch per transaction; the number
    filled. Returns once none is left that another process is not filling (rows another
    catch-up holds are skipped, not waited for)."""
    filled, started = 0, time.perf_counter()
    while True:
        async with session_scope(sessions) as session:
            # Filling a vector changes no count: a waiting row matches a search all the
            # same (the trigger of migration 0020 reads this, for this transaction).
            await session.execute(_COUNTS_UNCHANGED)
            result = await session.execute(_batch(account_id, batch))
        done = int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult
        filled += done
        # Until a batch finds none: that last scan also marks the index entries of the
        # rows just filled as dead, so the next run's check for waiting rows (one probe
        # of the partial index) does not visit them one by one before VACUUM.
        if not done:
            break
    if filled:
        log.info(
            "account %s: search index caught up (%d messages in %.1f s)",
            account_id,
            filled,
            time.perf_counter() - started,
        )
    return filled


async def backlog(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Waiting rows per account (accounts with none are left out): the partial index only."""
    if not account_ids:
        return {}
    rows = await session.execute(
        select(Message.account_id, func.count())
        .where(Message.account_id.in_(account_ids), _WAITING)
        .group_by(Message.account_id)
    )
    return {account_id: count for account_id, count in rows}
