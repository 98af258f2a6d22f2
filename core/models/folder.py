from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at, uuid_pk
from core.models.enums import FolderRole, db_enum


class Folder(Base):
    """A mailbox on the IMAP server, with the incremental sync checkpoint."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    delimiter: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    role: Mapped[FolderRole] = mapped_column(db_enum(FolderRole, "folder_role"))
    selected: Mapped[bool] = mapped_column(Boolean, server_default="false")

    # Sync state (RFC 3501 UIDVALIDITY/UIDs, RFC 7162 HIGHESTMODSEQ).
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    highest_uid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    highest_modseq: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    # Past mail still to fetch (newest first): UIDs below this one, inside the account's
    # past-sync window. NULL when the backfill is complete.
    backfill_before_uid: Mapped[int | None] = mapped_column(BigInteger)
    server_message_count: Mapped[int | None] = mapped_column(Integer)
    # The past-sync window as it was when the folder was first indexed: mail that arrived
    # before window_start (NULL: no limit) among the UIDs below window_end_uid (the mail
    # there then) is not synced; later mail always is. unsynced_count: how many server
    # messages that leaves out, as last counted (NULL: not known; the next run counts).
    # The self-check compares the stored rows plus unsynced_count with the server's count.
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end_uid: Mapped[int | None] = mapped_column(BigInteger)
    unsynced_count: Mapped[int | None] = mapped_column(Integer, server_default="0")
    message_count: Mapped[int] = mapped_column(Integer, server_default="0")
    unread_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_full_flag_scan_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()


class FolderChange(Base):
    """One statement (or, compacted, many) that changed a folder's messages: the rows are
    appended by triggers on ``messages`` (migration 0020), never by code. A folder's version
    is the sum of its ``changes``; a count over folders keeps while their versions do
    (core/inbox/counts.py)."""

    __tablename__ = "folder_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    folder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), index=True
    )
    changes: Mapped[int] = mapped_column(BigInteger, server_default="1")
