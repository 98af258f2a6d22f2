"""The SQL of watcher leases (``watcher_leases``): claiming, renewing, checking, releasing.

Every time is PostgreSQL's ``now()``, so the workers' clocks never have to agree. An
account is watchable while it syncs (SYNCING, ACTIVE or ERROR) and its INBOX is selected;
a server known not to offer IDLE is asked again after ``IDLE_RECHECK``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts.status import RUNNING
from core.mail.idle import InboxState
from core.models import Folder

IDLE_RECHECK = "1 hour"

_STATUSES = ", ".join(f"'{s.value}'" for s in sorted(RUNNING, key=lambda s: s.value))
_WATCHABLE = f"""
    a.status IN ({_STATUSES})
    AND EXISTS (
        SELECT 1 FROM folders f
        WHERE f.account_id = a.id AND f.selected AND upper(f.name) = 'INBOX'
    )"""  # noqa: S608  # constants only

_ADD_MISSING = text(
    f"""
    INSERT INTO watcher_leases (account_id)
    SELECT a.id FROM mail_accounts a
    WHERE {_WATCHABLE}
      AND NOT EXISTS (SELECT 1 FROM watcher_leases l WHERE l.account_id = a.id)
    ON CONFLICT DO NOTHING"""  # noqa: S608  # constants only
)

_CLAIM = text(
    f"""
    WITH free AS (
        SELECT l.account_id FROM watcher_leases l
        JOIN mail_accounts a ON a.id = l.account_id
        WHERE (l.expires_at IS NULL OR l.expires_at < now())
          AND (l.idle IS NOT FALSE OR l.checked_at < now() - interval '{IDLE_RECHECK}')
          AND {_WATCHABLE}
        ORDER BY l.expires_at NULLS FIRST
        LIMIT :limit
        FOR UPDATE OF l SKIP LOCKED
    )
    UPDATE watcher_leases w
    SET worker_id = :worker, expires_at = now() + make_interval(secs => :seconds),
        established_at = NULL
    FROM free WHERE w.account_id = free.account_id
    RETURNING w.account_id"""  # noqa: S608  # constants only
)

_RENEW = text(
    """
    UPDATE watcher_leases SET expires_at = now() + make_interval(secs => :seconds)
    WHERE worker_id = :worker"""
)

_LOST = text(
    f"""
    SELECT m.id FROM unnest(CAST(:mine AS uuid[])) AS m(id)
    WHERE NOT EXISTS (
        SELECT 1 FROM watcher_leases l JOIN mail_accounts a ON a.id = l.account_id
        WHERE l.account_id = m.id AND l.worker_id = :worker AND l.expires_at > now()
          AND {_WATCHABLE}
    )"""  # noqa: S608  # constants only
)

_RELEASE = text(
    """
    UPDATE watcher_leases SET worker_id = NULL, expires_at = NULL, established_at = NULL
    WHERE worker_id = :worker AND account_id = ANY(CAST(:ids AS uuid[]))"""
)

_RELEASE_ALL = text(
    """
    UPDATE watcher_leases SET worker_id = NULL, expires_at = NULL, established_at = NULL
    WHERE worker_id = :worker"""
)

_ESTABLISHED = text(
    """
    UPDATE watcher_leases SET idle = true, checked_at = now(), established_at = now()
    WHERE account_id = :account AND worker_id = :worker"""
)

_NOT_ESTABLISHED = text(
    """
    UPDATE watcher_leases SET established_at = NULL
    WHERE account_id = :account AND worker_id = :worker AND established_at IS NOT NULL"""
)

_NO_IDLE = text(
    """
    UPDATE watcher_leases
    SET idle = false, checked_at = now(), worker_id = NULL, expires_at = NULL,
        established_at = NULL
    WHERE account_id = :account AND worker_id = :worker"""
)

_IN_IDLE = text(
    """
    SELECT account_id FROM watcher_leases
    WHERE account_id = ANY(CAST(:ids AS uuid[])) AND worker_id IS NOT NULL
      AND expires_at > now() AND established_at IS NOT NULL"""
)


async def claim(
    session: AsyncSession, worker_id: str, limit: int, lease_seconds: float
) -> list[uuid.UUID]:
    """Take up to ``limit`` free leases of watchable accounts (skipping rows other workers
    are claiming at the same moment); the accounts taken."""
    if limit <= 0:
        return []
    await session.execute(_ADD_MISSING)
    rows = await session.execute(
        _CLAIM, {"limit": limit, "worker": worker_id, "seconds": lease_seconds}
    )
    return [row[0] for row in rows]


async def renew(session: AsyncSession, worker_id: str, lease_seconds: float) -> None:
    await session.execute(_RENEW, {"worker": worker_id, "seconds": lease_seconds})


async def lost(
    session: AsyncSession, worker_id: str, mine: Collection[uuid.UUID]
) -> list[uuid.UUID]:
    """Of the accounts this worker watches, those it must stop watching: paused, removed,
    INBOX unselected, waiting for a new password, or their lease taken by another worker."""
    if not mine:
        return []
    rows = await session.execute(_LOST, {"mine": list(mine), "worker": worker_id})
    return [row[0] for row in rows]


async def release(session: AsyncSession, worker_id: str, ids: Sequence[uuid.UUID]) -> None:
    if ids:
        await session.execute(_RELEASE, {"worker": worker_id, "ids": list(ids)})


async def release_all(session: AsyncSession, worker_id: str) -> None:
    await session.execute(_RELEASE_ALL, {"worker": worker_id})


async def mark_established(
    session: AsyncSession, worker_id: str, account_id: uuid.UUID, established: bool
) -> None:
    statement = _ESTABLISHED if established else _NOT_ESTABLISHED
    await session.execute(statement, {"account": account_id, "worker": worker_id})


async def mark_without_idle(session: AsyncSession, worker_id: str, account_id: uuid.UUID) -> None:
    """The server does not offer IDLE: release the lease; it is polled, and asked again later."""
    await session.execute(_NO_IDLE, {"account": account_id, "worker": worker_id})


async def in_idle(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of these accounts, those a live watcher holds in IDLE right now."""
    if not account_ids:
        return set()
    rows = await session.execute(_IN_IDLE, {"ids": list(account_ids)})
    return {row[0] for row in rows}


async def stored_inbox(
    session: AsyncSession, account_id: uuid.UUID
) -> tuple[str, InboxState] | None:
    """INBOX's stored name, and the folder as the last sync saw it (to tell whether mail
    came while nobody watched)."""
    row = (
        await session.execute(
            select(
                Folder.name,
                Folder.uidvalidity,
                Folder.uidnext,
                Folder.server_message_count,
                Folder.highest_modseq,
            ).where(Folder.account_id == account_id, func.upper(Folder.name) == "INBOX")
        )
    ).first()
    if row is None:
        return None
    return row[0], InboxState(row[1], row[2], row[3], row[4])
