"""All SQL of the sync engine."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts.status import RUNNING
from core.models import Folder, MailAccount, Message
from core.moves import repository as moves
from core.sync import claims, search_index
from core.sync.flags import Flags

_MESSAGES = cast(Table, Message.__table__)


_STORED = (
    select(func.count())
    .where(Message.folder_id == Folder.id, Message.uid > 0)
    .correlate(Folder)
    .scalar_subquery()
)


async def folders(session: AsyncSession, account_id: uuid.UUID) -> list[tuple[Folder, int]]:
    """Every folder of the account with its number of stored rows (counted for selected
    ones only), selected ones in sync order (role, then name). One statement."""
    rows = await session.execute(
        select(Folder, case((Folder.selected, _STORED), else_=0))
        .where(Folder.account_id == account_id)
        .order_by(Folder.role, Folder.name)
    )
    return [(folder, int(stored)) for folder, stored in rows]


@dataclass(frozen=True)
class FolderCheckpoint:
    """A folder's sync state as last committed: a plain record, with no session behind it,
    that the sync carries from one short transaction to the next."""

    id: uuid.UUID
    name: str
    uidvalidity: int | None
    highest_uid: int
    highest_modseq: int | None
    uidnext: int | None
    backfill_before_uid: int | None
    server_message_count: int | None
    last_full_flag_scan_at: datetime | None
    last_synced_at: datetime | None
    window_start: datetime | None
    window_end_uid: int | None
    unsynced_count: int | None
    stored_count: int = 0  # not a column: the rows stored when it was read

    @classmethod
    def of(cls, folder: Folder, stored_count: int) -> FolderCheckpoint:
        columns = {f.name: getattr(folder, f.name) for f in dataclasses.fields(cls)[:-1]}
        return cls(**columns, stored_count=stored_count)


async def selected_checkpoints(
    session: AsyncSession, account_id: uuid.UUID
) -> list[FolderCheckpoint]:
    """The checkpoints of the folders to sync, in sync order (role, then name)."""
    return [FolderCheckpoint.of(f, n) for f, n in await folders(session, account_id) if f.selected]


_CHECKPOINT_COLUMNS = frozenset(f.name for f in dataclasses.fields(FolderCheckpoint)) - {
    "id",
    "name",
    "stored_count",
}


async def save_checkpoint(
    session: AsyncSession, folder_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Write checkpoint columns (a folder's sync state only: never its name or selection)."""
    unknown = set(values) - _CHECKPOINT_COLUMNS
    if unknown:
        raise ValueError(f"not checkpoint columns: {sorted(unknown)}")
    await session.execute(update(Folder).where(Folder.id == folder_id).values(**values))


async def stored_uids(session: AsyncSession, folder_id: uuid.UUID) -> set[int]:
    """UIDs of rows that belong to the folder's current UIDVALIDITY (positive ones), and of
    messages moved away here but not yet on the server (so no sync fetches them back)."""
    rows = await session.scalars(
        select(Message.uid)
        .where(Message.folder_id == folder_id, Message.uid > 0)
        .union_all(moves.pending_source_uids(folder_id))
    )
    return set(rows)


async def stored_flags(
    session: AsyncSession, folder_id: uuid.UUID, uids: Sequence[int]
) -> dict[int, Flags]:
    rows = await session.execute(
        select(
            Message.uid,
            Message.is_read,
            Message.is_flagged,
            Message.is_answered,
            Message.is_deleted,
        ).where(Message.folder_id == folder_id, Message.uid.in_(uids))
    )
    return {uid: Flags(*flags) for uid, *flags in rows}


_UPDATE_FLAGS = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.folder_id == bindparam("folder"),
        _MESSAGES.c.uid == bindparam("row_uid"),
    )
    .values(
        # A flag changed here and not yet written back keeps its local value.
        is_read=case((_MESSAGES.c.read_pending, _MESSAGES.c.is_read), else_=bindparam("read")),
        is_flagged=case(
            (_MESSAGES.c.flagged_pending, _MESSAGES.c.is_flagged), else_=bindparam("flagged")
        ),
        is_answered=bindparam("answered"),
        is_deleted=bindparam("deleted"),
        modseq=bindparam("row_modseq"),
    )
)


async def update_flags(
    session: AsyncSession,
    folder_id: uuid.UUID,
    changes: Iterable[tuple[int, Flags, int | None]],
) -> None:
    """One statement for all the changes (a flag scan may change thousands of rows)."""
    params = [
        {
            "folder": folder_id,
            "row_uid": uid,
            "read": flags.read,
            "flagged": flags.flagged,
            "answered": flags.answered,
            "deleted": flags.deleted,
            "row_modseq": modseq,
        }
        for uid, flags, modseq in changes
    ]
    if params:
        await session.execute(_UPDATE_FLAGS, params)


async def delete_uids(session: AsyncSession, folder_id: uuid.UUID, uids: Sequence[int]) -> int:
    if not uids:
        return 0
    result = await session.execute(
        delete(Message).where(Message.folder_id == folder_id, Message.uid.in_(uids))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult


async def delete_uid_ranges(
    session: AsyncSession, folder_id: uuid.UUID, ranges: Sequence[tuple[int, int]]
) -> int:
    result = await session.execute(
        delete(Message).where(
            Message.folder_id == folder_id,
            or_(*(Message.uid.between(low, high) for low, high in ranges)),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult


_JSON_COLUMNS = frozenset(("to_addresses", "cc_addresses", "attachments"))
_WRITABLE = frozenset(c.name for c in _MESSAGES.columns) - {"id", "search_vector"}
# A per-connection staging table: COPY takes no ON CONFLICT. Emptied by every commit (and
# by a rollback), so a row never outlives the transaction that copied it.
_STAGING = "incoming_messages"
# One round trip: made on the connection's first use, emptied of an earlier call of this
# transaction (a commit or rollback empties it too).
_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT * FROM messages WITH NO DATA; DELETE FROM {_STAGING}"
)


async def insert_messages(
    session: AsyncSession, rows: list[dict[str, Any]], *, defer_search: bool = False
) -> int:
    """Insert what is not there yet ((folder, uid) is unique); the number inserted.
    ``defer_search``: leave the rows' search vectors to core/sync/search_index.catch_up.

    In the session's transaction, with asyncpg's binary COPY into a temporary staging table,
    then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: three round trips whatever
    the number of rows, and no SQL compiled or parameters bound per row. Measured with 100
    bench rows: 3.4 ms of worker CPU instead of 5.5 ms for SQLAlchemy's multi-row INSERT;
    PostgreSQL's own 32-39 ms (search vector, indexes, foreign keys) is the same either way,
    and the same as a COPY straight into ``messages``, which could not skip duplicates.
    """
    if not rows:
        return 0
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():  # SQLAlchemy begins on its first statement
        await connection.exec_driver_sql("SELECT 1")
    columns = tuple(rows[0])
    unknown = set(columns) - _WRITABLE
    if unknown:
        raise ValueError(f"not columns of messages: {sorted(unknown)}")
    # For this transaction (is_local): the insert trigger of migration 0019 reads it.
    defer = "on" if defer_search else "off"
    await driver.execute(
        f"{_STAGE}; SELECT set_config('mailsync.defer_search_vector', '{defer}', true)"
    )
    records = [
        tuple(
            json.dumps(row[c]) if c in _JSON_COLUMNS else row[c]  # the codec takes text
            for c in columns
        )
        for row in rows
    ]
    await driver.copy_records_to_table(_STAGING, records=records, columns=columns)
    names = ", ".join(f'"{c}"' for c in columns)  # checked above: column names only
    status = await driver.execute(
        f"INSERT INTO messages ({names}) SELECT {names} FROM {_STAGING} "  # noqa: S608
        "ON CONFLICT (folder_id, uid) DO NOTHING"
    )
    return int(status.split()[-1])


async def park_uids_for_rematch(session: AsyncSession, folder_id: uuid.UUID) -> None:
    """UIDVALIDITY changed: old UIDs mean nothing. Keep the rows (negated UIDs) so that the
    refetch can re-key them by Message-ID instead of counting old mail as new."""
    await session.execute(
        update(Message)
        .where(Message.folder_id == folder_id, Message.uid > 0)
        .values(uid=-Message.uid)
    )


_REKEY_PARKED = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("row_id"))
    .values(
        uid=bindparam("new_uid"),
        modseq=bindparam("row_modseq"),
        is_answered=bindparam("answered"),
        is_deleted=bindparam("deleted"),
        # A mark made here and not yet written back stays (it is pushed next run).
        is_read=case((_MESSAGES.c.read_pending, _MESSAGES.c.is_read), else_=bindparam("read")),
        is_flagged=case(
            (_MESSAGES.c.flagged_pending, _MESSAGES.c.is_flagged), else_=bindparam("flagged")
        ),
    )
)


@dataclass(frozen=True)
class ParkedRow:
    id: int
    message_id: str | None
    fingerprint: str | None


async def parked_rows(session: AsyncSession, folder_id: uuid.UUID) -> list[ParkedRow]:
    """The folder's rows waiting to be found again after a renumbering, oldest first."""
    rows = await session.execute(
        select(Message.id, Message.message_id, Message.fingerprint)
        # A move not yet written back is parked too, but not on the server yet.
        .where(Message.folder_id == folder_id, Message.uid < 0, ~moves.has_pending_move())
        .order_by(Message.id)
    )
    return [ParkedRow(*row) for row in rows]


@dataclass(frozen=True)
class Rekey:
    """A parked row found again: its new UID and the flags the server has now."""

    row_id: int
    uid: int
    modseq: int | None
    flags: Flags


async def rekey_parked(session: AsyncSession, rekeys: Sequence[Rekey]) -> None:
    """One statement for all of them (executemany)."""
    params = [
        {
            "row_id": r.row_id,
            "new_uid": r.uid,
            "row_modseq": r.modseq,
            "answered": r.flags.answered,
            "deleted": r.flags.deleted,
            "read": r.flags.read,
            "flagged": r.flags.flagged,
        }
        for r in rekeys
    ]
    if params:
        await session.execute(_REKEY_PARKED, params)


async def drop_parked(session: AsyncSession, folder_id: uuid.UUID) -> int:
    result = await session.execute(
        delete(Message).where(
            Message.folder_id == folder_id, Message.uid < 0, ~moves.has_pending_move()
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult


async def refresh_folder_counts(session: AsyncSession, folder_id: uuid.UUID) -> int:
    """Recompute the folder's message and unread counts; the number of stored rows."""
    shown = Message.is_deleted.is_(False)  # marked \Deleted: hidden until expunged
    counts = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(shown),
                func.count().filter(shown, Message.is_read.is_(False)),
            ).where(Message.folder_id == folder_id, Message.uid > 0)
        )
    ).one()
    await session.execute(
        update(Folder)
        .where(Folder.id == folder_id)
        .values(message_count=counts[1], unread_count=counts[2])
    )
    return int(counts[0])


async def claim_account(
    session: AsyncSession, account_id: uuid.UUID, token: uuid.UUID
) -> MailAccount | None:
    """Claim the account for a run (core/sync/claims.py) if it may sync and no live run
    holds it: its row as claimed, or None. One statement."""
    account: MailAccount | None = await session.scalar(
        update(MailAccount)
        .where(
            MailAccount.id == account_id,
            MailAccount.status.in_(sorted(RUNNING)),
            claims.unclaimed(),
        )
        .values(**claims.claim_values(token))
        .returning(MailAccount)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return account


async def due_account_ids(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Accounts whose next sync time has come, oldest first (read only: the scheduler
    claims them with :func:`claim_due_accounts`)."""
    rows = await session.scalars(
        select(MailAccount.id)
        .where(
            MailAccount.status.in_(sorted(RUNNING)),
            or_(MailAccount.next_sync_at.is_(None), MailAccount.next_sync_at <= now),
        )
        .order_by(MailAccount.next_sync_at.nulls_first())
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True)
class DueSync:
    account_id: uuid.UUID
    due_at: datetime  # when its sync is due (now, for an account never scheduled)


async def claim_due_accounts(
    session: AsyncSession, *, within: timedelta, interval: timedelta, limit: int
) -> list[DueSync]:
    """Take up to ``limit`` accounts due now or within ``within``, oldest first, for the
    scheduler to queue: each one's ``next_sync_at`` moves an interval on (from its due time,
    or from now when it is late), so no scheduler in any worker takes it again before then,
    and rows another transaction holds are skipped, not waited for. One statement."""
    now = func.now()
    due = (
        select(MailAccount.id.label("id"), MailAccount.next_sync_at.label("due_at"))
        .where(
            MailAccount.status.in_(sorted(RUNNING)),
            or_(MailAccount.next_sync_at.is_(None), MailAccount.next_sync_at <= now + within),
        )
        .order_by(MailAccount.next_sync_at.nulls_first())
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    rows = await session.execute(
        update(MailAccount)
        .where(MailAccount.id == due.c.id)
        .values(next_sync_at=func.greatest(func.coalesce(due.c.due_at, now), now) + interval)
        .returning(MailAccount.id, func.coalesce(due.c.due_at, now))
        .execution_options(synchronize_session=False)
    )
    return [DueSync(account_id, due_at) for account_id, due_at in rows]


async def ran_out_claims(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """Accounts whose run's claim ran out without being cleared: the run's worker died."""
    rows = await session.scalars(
        select(MailAccount.id)
        .where(MailAccount.sync_claim.is_not(None), MailAccount.sync_claimed_until < func.now())
        .limit(limit)
    )
    return list(rows)


async def clear_ran_out_claims(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> None:
    if account_ids:
        await session.execute(
            update(MailAccount)
            .where(
                MailAccount.id.in_(account_ids),
                MailAccount.sync_claim.is_not(None),
                MailAccount.sync_claimed_until < func.now(),
            )
            .values(sync_claim=None, sync_claimed_until=None)
            .execution_options(synchronize_session=False)
        )


async def mark_sync_requested(
    session: AsyncSession, account_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    if account_ids:
        await session.execute(
            update(MailAccount)
            .where(MailAccount.id.in_(account_ids))
            .values(next_sync_at=now, sync_requested_at=now)
            .execution_options(synchronize_session=False)
        )


async def mark_sync_asked(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> None:
    """A sync was asked for (leaving the schedule as it is): a run under way runs again."""
    await session.execute(
        update(MailAccount)
        .where(MailAccount.id == account_id)
        .values(sync_requested_at=now)
        .execution_options(synchronize_session=False)
    )


async def unselect_folder(session: AsyncSession, folder: Folder) -> None:
    """Stop syncing a folder: its mail leaves the inbox and its checkpoint starts over."""
    await session.execute(delete(Message).where(Message.folder_id == folder.id))
    folder.selected = False
    folder.uidvalidity = None
    folder.highest_uid = 0
    folder.highest_modseq = None
    folder.uidnext = None
    folder.server_message_count = None
    folder.backfill_before_uid = None
    folder.window_start = None
    folder.window_end_uid = None
    folder.unsynced_count = 0
    folder.last_full_flag_scan_at = None
    folder.message_count = 0
    folder.unread_count = 0


@dataclass(frozen=True)
class PendingFlags:
    """A message whose read and/or flagged state changed here and is not on the server yet
    (None: that flag is not pending)."""

    folder_id: uuid.UUID
    uid: int
    is_read: bool | None
    is_flagged: bool | None


_PENDING = Message.read_pending | Message.flagged_pending


async def pending_flags(session: AsyncSession, account_id: uuid.UUID) -> list[PendingFlags]:
    rows = await session.execute(
        select(
            Message.folder_id,
            Message.uid,
            Message.is_read,
            Message.is_flagged,
            Message.read_pending,
            Message.flagged_pending,
        ).where(Message.account_id == account_id, _PENDING, Message.uid > 0)
    )
    return [
        PendingFlags(
            r.folder_id,
            r.uid,
            r.is_read if r.read_pending else None,
            r.is_flagged if r.flagged_pending else None,
        )
        for r in rows
    ]


_CLEAR_PENDING = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.folder_id == bindparam("folder"),
        _MESSAGES.c.uid == bindparam("row_uid"),
    )
    .values(
        # Written back: no longer pending, unless it was changed once more meanwhile.
        read_pending=case(
            (_MESSAGES.c.is_read == bindparam("read"), False), else_=_MESSAGES.c.read_pending
        ),
        flagged_pending=case(
            (_MESSAGES.c.is_flagged == bindparam("flagged"), False),
            else_=_MESSAGES.c.flagged_pending,
        ),
    )
)


async def clear_pending(session: AsyncSession, written: Sequence[PendingFlags]) -> None:
    params = [
        {"folder": w.folder_id, "row_uid": w.uid, "read": w.is_read, "flagged": w.is_flagged}
        for w in written
    ]
    if params:
        await session.execute(_CLEAR_PENDING, params)


@dataclass(frozen=True)
class PendingWork:
    """What a run finds waiting from earlier: marks (flags) and moves or deletes made in
    the inbox to write back to the server, and rows whose search vectors wait to be filled
    (a run that stored them was cut short: core/sync/search_index.py)."""

    flags: bool
    moves: bool
    search: bool


async def pending_work(session: AsyncSession, account_id: uuid.UUID) -> PendingWork:
    """One statement, so a run with none of them skips every step."""
    flags = select(Message.id).where(Message.account_id == account_id, _PENDING, Message.uid > 0)
    pending_moves = moves.pending_of_account(account_id)
    search = search_index.waiting_rows(account_id)
    row = (
        await session.execute(select(flags.exists(), pending_moves.exists(), search.exists()))
    ).one()
    return PendingWork(bool(row[0]), bool(row[1]), bool(row[2]))


async def has_pending_flags(session: AsyncSession, account_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Message.id)
        .where(Message.account_id == account_id, _PENDING, Message.uid > 0)
        .limit(1)
    )
    return found is not None
