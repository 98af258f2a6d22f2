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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from core.models.base import Base, created_at

# Full-text search over subject (weight A), addresses (B) and body (C), with the
# language-neutral 'simple' configuration: no stemming, so any language and any name
# matches as typed. Addresses go in twice, whole and split at "@", so "bob@acme.com",
# "bob" and "acme.com" (or its prefix "acme") all find bob@acme.com. The body is capped
# well below the 1 MB limit of a tsvector. The expression is one SQL function,
# message_search_vector (migration 0019); a trigger fills the column on insert unless the
# transaction defers it (a bulk sync chunk: core/sync/search_index.py fills it after).
SEARCH_VECTOR_ARGUMENTS = (
    "subject",
    "from_name",
    "from_address",
    "to_addresses",
    "cc_addresses",
    "body_text",
)


class Message(Base):
    """One message in one synced folder: (folder_id, uid) is its identity on the server."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        # The inbox walks each folder newest first: (folder, date, id) is its keyset.
        Index("ix_messages_folder_date", "folder_id", "date", "id"),
        # A Message-ID's copies: the inbox's one-copy-per-message probe, re-keying rows
        # after a UIDVALIDITY change.
        Index("ix_messages_message_id", "message_id", "account_id"),
        Index("ix_messages_search", "search_vector", postgresql_using="gin"),
        # Rows whose search vector is still to be filled (core/sync/search_index.py).
        Index(
            "ix_messages_search_pending",
            "account_id",
            postgresql_where=text("search_vector IS NULL"),
        ),
        Index(
            "ix_messages_flags_pending",
            "account_id",
            postgresql_where=text("read_pending OR flagged_pending"),
        ),
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
    # \Deleted on the server but not expunged yet: kept (it may be undeleted), not shown.
    is_deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    has_attachments: Mapped[bool] = mapped_column(Boolean, server_default="false")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # False: larger than the maximum message size; headers and structure only, no body.
    body_downloaded: Mapped[bool] = mapped_column(Boolean, server_default="true")
    size: Mapped[int] = mapped_column(Integer, server_default="0")
    # core.mail.fingerprint of the raw headers and size: re-finds the row after the server
    # renumbers the folder, also without a (unique) Message-ID. NULL for rows stored
    # before it existed (they are re-found by Message-ID only).
    fingerprint: Mapped[str | None] = mapped_column(Text)
    # Read / flagged changed here (markMessages) and not yet stored on the server, each on
    # its own: the sync writes back only the changed flag, first, and never overwrites it
    # with the server's older value (while still taking the other flag from the server).
    read_pending: Mapped[bool] = mapped_column(Boolean, server_default="false")
    flagged_pending: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Why a move or delete made here could not be written back to the server (it was
    # undone); cleared by the next one that succeeds.
    write_back_error: Mapped[str | None] = mapped_column(Text)
    # NULL: not filled yet (a deferred bulk insert); search computes it meanwhile.
    search_vector: Mapped[str | None] = mapped_column(TSVECTOR, deferred=True)
    created_at: Mapped[datetime] = created_at()


def computed_search_vector(table: Any) -> ColumnElement[Any]:
    """The row's search vector as the trigger computes it (for rows still waiting)."""
    return func.message_search_vector(
        *(getattr(table, name) for name in SEARCH_VECTOR_ARGUMENTS), type_=TSVECTOR
    )
