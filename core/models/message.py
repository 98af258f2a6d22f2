from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at


class Message(Base):
    """One message in one synced folder: (folder_id, uid) is its identity on the server."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_messages_account_date", "account_id", "date", "id"),
        Index("ix_messages_account_message_id", "account_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE")
    )
    folder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[list[str]] = mapped_column(PG_ARRAY(Text), server_default="{}")
    thread_id: Mapped[uuid.UUID] = mapped_column(index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    from_name: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(Text)
    to_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    cc_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    internal_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snippet: Mapped[str] = mapped_column(Text, server_default="")
    is_read: Mapped[bool] = mapped_column(Boolean, server_default="false")
    is_flagged: Mapped[bool] = mapped_column(Boolean, server_default="false")
    is_answered: Mapped[bool] = mapped_column(Boolean, server_default="false")
    has_attachments: Mapped[bool] = mapped_column(Boolean, server_default="false")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = created_at()
