from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class ThreadKey(Base):
    """Which conversation a Message-ID belongs to, per user (across all their accounts).

    Every stored message registers its own id and the ids it refers to, so a reply that
    arrives before its parent still joins the parent's thread: one index lookup per key.
    """

    __tablename__ = "thread_keys"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    thread_id: Mapped[uuid.UUID]
