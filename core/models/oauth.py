from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at


class OAuthGrant(Base):
    """An OAuth2 account's tokens. Both are AES-GCM ciphertexts bound to (account id,
    field), like passwords (core.crypto); neither is ever returned or logged."""

    __tablename__ = "oauth_grants"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    # The provider's stable id for the signed-in user ("sub"), when it told us.
    subject: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The process refreshing the tokens now (core/claims.py) and until when: one refresh
    # at a time, with no database connection held while the provider answers.
    refresh_claim: Mapped[uuid.UUID | None] = mapped_column()
    refresh_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
