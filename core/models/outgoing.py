from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at, uuid_pk
from core.models.enums import SendStatus, SentCopy, db_enum


class OutgoingMessage(Base):
    """A message the user sent (or is sending) through one of their accounts.

    Removing the account keeps the row (``account_id`` becomes NULL, ``from_address``
    stays): the user's record of what went out outlives the mailbox, and a message still
    QUEUED then fails with "the account was removed" instead of vanishing silently.

    Delivery state (see ``core.sending.delivery``): ``smtp_data_started_at`` is committed
    just before the SMTP DATA command and cleared when the server answers 4xx. A worker
    that finds it set on a QUEUED message knows an earlier attempt died while the server
    may have accepted the mail, and fails it rather than risk sending it twice.
    """

    __tablename__ = "outgoing_messages"
    __table_args__ = (Index("ix_outgoing_messages_owner_created", "owner_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="SET NULL"), index=True
    )
    from_address: Mapped[str] = mapped_column(Text)
    from_name: Mapped[str | None] = mapped_column(Text)
    to_addresses: Mapped[list[str]] = mapped_column(ARRAY(Text))
    cc_addresses: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    bcc_addresses: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Without angle brackets, like messages.message_id; generated once, at enqueue.
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    thread_id: Mapped[uuid.UUID]
    automated: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # The exact bytes sent over SMTP and appended to the Sent folder (no Bcc header).
    mime: Mapped[bytes] = mapped_column(LargeBinary)

    status: Mapped[SendStatus] = mapped_column(db_enum(SendStatus, "send_status"), index=True)
    smtp_data_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The delivery that holds the message (core/claims.py) and until when: renewed while
    # it talks to the SMTP and IMAP servers, cleared when it ends, run out if it died.
    delivery_claim: Mapped[uuid.UUID | None] = mapped_column()
    delivery_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_copy: Mapped[SentCopy] = mapped_column(
        db_enum(SentCopy, "sent_copy"), server_default=SentCopy.PENDING.value
    )
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = created_at()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
