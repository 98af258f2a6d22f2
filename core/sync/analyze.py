"""Planner statistics after a bulk sync: ANALYZE what it filled, when they are stale.

PostgreSQL plans from statistics that autovacuum refreshes some time after a bulk change:
within a minute or so on a quiet server, later on a busy one, never where autovacuum is off
(as on the machines this project is tested on). Until then the planner takes the tables for
what they were before, and right after a first sync, when its user opens the new mailbox,
it plans the inbox page from that: for a 343-message account, just synced into an empty
table, a nested loop that compared every row with every other (9.7 ms in PostgreSQL)
instead of an index scan (0.3 ms). PostgreSQL's documentation says to run ANALYZE after a
bulk load ("Populating a Database"); a run that stored rows in bulk does so, for the tables
it filled, when autovacuum's own rule says their statistics are stale.

One process at a time (a transaction-level advisory lock; another that finds it taken
skips, since the statistics are being refreshed), after ``syncCompleted`` and the search
vectors: nobody waits for it, and a failure only leaves the refresh to autovacuum.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import session_scope

log = logging.getLogger(__name__)

TABLES = ("messages", "thread_keys")  # what a bulk sync fills (fixed names, not input)
_LOCK = 0x6D61_696C_5F61_6E61  # pg_try_advisory_xact_lock key: "mail_ana"

# autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * rows (the server's own
# settings), the rule autovacuum would apply; reltuples is -1 for a never-analyzed table.
# The changes counted are the statistics collector's, or the caller's own rows if more: a
# backend reports its counts up to a second or more after its commit, so a sync's last
# chunks may not be counted yet when it ends.
_STALE = text(
    """
    SELECT c.relname
    FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN (SELECT to_regclass(name) FROM unnest(CAST(:tables AS text[])) AS name)
      AND greatest(s.n_mod_since_analyze, :changed)
          > current_setting('autovacuum_analyze_threshold')::float8
          + current_setting('autovacuum_analyze_scale_factor')::float8
            * greatest(c.reltuples, 0)
    ORDER BY c.relname
    """
)


async def stale_tables(session: AsyncSession, changed: int = 0) -> list[str]:
    """Which of :data:`TABLES` have changed enough since their last ANALYZE for autovacuum
    to analyze them, counting at least ``changed`` rows changed in each."""
    rows = await session.execute(_STALE, {"tables": list(TABLES), "changed": changed})
    return [name for (name,) in rows if name in TABLES]


async def refresh_after_bulk_sync(
    sessions: async_sessionmaker[AsyncSession], changed: int
) -> list[str]:
    """ANALYZE the stale ones of :data:`TABLES`, after a sync that stored ``changed`` rows;
    the tables analyzed (none when another process holds the refresh, or none is stale)."""
    started = time.perf_counter()
    async with session_scope(sessions) as session:
        if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK}):
            return []
        stale = await stale_tables(session, changed)
        for table in stale:  # one of the fixed names above
            await session.execute(text(f"ANALYZE {table}"))
    if stale:
        log.info(
            "planner statistics refreshed after a bulk sync: %s (%.2f s)",
            ", ".join(stale),
            time.perf_counter() - started,
        )
    return stale
