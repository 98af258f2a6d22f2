from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class WatcherLease(Base):
    """Which worker watches an account's INBOX with IMAP IDLE, until when (renewed by it).

    A lease whose ``expires_at`` passed (or is NULL) is free: any worker may claim it. Kept
    in PostgreSQL, not Redis, so a flushed or restarted Redis loses no watcher.
    """

    __tablename__ = "watcher_leases"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Whether the server offers IDLE (NULL: not asked yet), as learned at checked_at.
    idle: Mapped[bool | None] = mapped_column(Boolean)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the current holder's connection entered IDLE (NULL: not, or not yet).
    established_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
