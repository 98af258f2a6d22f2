from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Integer
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at


class PendingMove(Base):
    """A move or a delete for good made here and not yet done on the IMAP server.

    The message's row shows the new state at once (moved into its target folder with a
    parked, negative UID; or marked deleted); this row remembers where the message still
    is on the server until the sync run writes it back (core.sync.move_push).
    """

    __tablename__ = "pending_moves"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE"), index=True
    )
    source_folder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )
    source_uid: Mapped[int] = mapped_column(BigInteger)
    source_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # NULL: deleted for good (\Deleted and UID EXPUNGE of this UID only).
    target_folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = created_at()
