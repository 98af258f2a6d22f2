"""All SQL of sending."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.claims import RowClaim
from core.db import SessionFactory, session_scope
from core.models import (
    Folder,
    FolderRole,
    Message,
    OutgoingMessage,
    SendStatus,
    SentCopy,
)


async def get_message(session: AsyncSession, message_id: int) -> Message | None:
    return await session.get(Message, message_id)


async def lock_outgoing(session: AsyncSession, outgoing_id: uuid.UUID) -> OutgoingMessage | None:
    return await session.scalar(
        select(OutgoingMessage)
        .where(OutgoingMessage.id == outgoing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def sent_folder(session: AsyncSession, account_id: uuid.UUID) -> Folder | None:
    """The account's Sent folder (the first by name if the server marks several)."""
    return await session.scalar(
        select(Folder)
        .where(Folder.account_id == account_id, Folder.role == FolderRole.SENT)
        .order_by(Folder.name)
        .limit(1)
    )


async def list_owned(
    session: AsyncSession, owner_id: uuid.UUID, status: SendStatus | None, limit: int
) -> list[OutgoingMessage]:
    """The owner's outgoing messages, newest first."""
    query = select(OutgoingMessage).where(OutgoingMessage.owner_id == owner_id)
    if status is not None:
        query = query.where(OutgoingMessage.status == status)
    query = query.order_by(OutgoingMessage.created_at.desc(), OutgoingMessage.id.desc())
    return list(await session.scalars(query.limit(limit)))


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, outgoing_id: uuid.UUID
) -> OutgoingMessage | None:
    return await session.scalar(
        select(OutgoingMessage).where(
            OutgoingMessage.id == outgoing_id, OutgoingMessage.owner_id == owner_id
        )
    )


async def unfinished(
    session: AsyncSession, rested_since: datetime, limit: int
) -> list[tuple[uuid.UUID, bool]]:
    """Messages a worker still has to deliver or file, oldest first, each with whether it
    may be queued again now: no SMTP attempt started yet (nothing can have been sent, so at
    once), or untouched since ``rested_since`` (longer than any retry's wait)."""
    unfinished_ = (OutgoingMessage.status == SendStatus.QUEUED) | (
        (OutgoingMessage.status == SendStatus.SENT)
        & (OutgoingMessage.sent_copy == SentCopy.PENDING)
    )
    ready = (
        (OutgoingMessage.status == SendStatus.QUEUED)
        & (OutgoingMessage.attempts == 0)
        & OutgoingMessage.smtp_data_started_at.is_(None)
    ) | (OutgoingMessage.updated_at < rested_since)
    rows = await session.execute(
        select(OutgoingMessage.id, ready)
        .where(unfinished_)
        .order_by(OutgoingMessage.created_at)
        .limit(limit)
    )
    return [(outgoing_id, bool(now)) for outgoing_id, now in rows]


DELIVERY_CLAIM = RowClaim(
    "delivery",
    OutgoingMessage.id,
    OutgoingMessage.delivery_claim,
    OutgoingMessage.delivery_claimed_until,
)


async def claim_delivery(
    sessions: SessionFactory, outgoing_id: uuid.UUID, token: uuid.UUID
) -> Literal["claimed", "gone"] | float:
    """Claim the message for one delivery (one statement): "claimed"; "gone" when there is
    no such message any more; else the seconds until the other holder's claim runs out
    (another worker delivers it now, or died doing so). One delivery of a message at a time
    across workers, even if Redis forgets the job id, without a connection held while it
    talks to the servers."""
    async with session_scope(sessions) as session:
        if await DELIVERY_CLAIM.take(session, outgoing_id, token):
            return "claimed"
        row = (
            await session.execute(
                select(
                    func.extract("epoch", OutgoingMessage.delivery_claimed_until - func.now())
                ).where(OutgoingMessage.id == outgoing_id)
            )
        ).first()
    if row is None:
        return "gone"
    return max(float(row[0] or 0.0), 0.0)


async def count_queued(session: AsyncSession) -> int:
    """Outgoing messages not yet sent or given up on (the metrics' gauge)."""
    count = await session.scalar(
        select(func.count()).where(OutgoingMessage.status == SendStatus.QUEUED)
    )
    return count or 0
