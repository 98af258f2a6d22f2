from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, created_at, uuid_pk
from core.models.company import Company
from core.models.enums import Role, db_enum


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_lower_email", func.lower(text("email")), unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(db_enum(Role, "role"))
    # SET NULL: removing the default account leaves the user with no default.
    default_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = created_at()

    company: Mapped[Company] = relationship(lazy="raise")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = created_at()
    # Written at most every few minutes (core.identity.service.TOUCH_EVERY).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
