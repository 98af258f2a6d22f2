"""Telling a user's subscription clients that something changed.

The one helper every domain uses to announce an event (``core.events``): after the
transaction that made the change has committed (never for a change that was rolled back),
or right away for progress that is not stored. A lost notification never fails the work
it reports.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import after_commit
from core.events import Event, EventBus

log = logging.getLogger(__name__)


def announce_after_commit(
    session: AsyncSession, events: EventBus, user_id: uuid.UUID, event: Event
) -> None:
    """Publish once ``session``'s transaction has committed; dropped on rollback."""

    async def publish() -> None:
        await events.publish(user_id, event)

    after_commit(session, publish)


async def announce_now(events: EventBus, user_id: uuid.UUID, event: Event) -> None:
    try:
        await events.publish(user_id, event)
    except Exception:  # Redis away: the work goes on, the client catches up on its next read
        log.warning("could not publish %s for user %s", event.kind, user_id)
