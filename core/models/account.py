from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at, uuid_pk
from core.models.enums import (
    AccountStatus,
    AuthMethod,
    ConnectionSecurity,
    PastSync,
    PauseReason,
    Sharing,
    db_enum,
)


class MailAccount(Base):
    __tablename__ = "mail_accounts"
    __table_args__ = (
        Index(
            "uq_mail_accounts_owner_lower_address",
            "owner_id",
            func.lower(text("email_address")),
            unique=True,
        ),
        # Only OAuth2 accounts go without an IMAP password (their tokens are in oauth_grants).
        CheckConstraint(
            "auth_method <> 'PASSWORD' OR imap_password_encrypted IS NOT NULL",
            name="password_accounts_have_a_password",
        ),
        # The scheduler looks for claims that ran out (their worker died) on every tick.
        Index(
            "ix_mail_accounts_sync_claimed_until",
            "sync_claimed_until",
            postgresql_where=text("sync_claim IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    email_address: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[AccountStatus] = mapped_column(db_enum(AccountStatus, "account_status"))
    paused_reason: Mapped[PauseReason | None] = mapped_column(db_enum(PauseReason, "pause_reason"))
    sharing: Mapped[Sharing] = mapped_column(db_enum(Sharing, "sharing"))
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    past_sync: Mapped[PastSync | None] = mapped_column(db_enum(PastSync, "past_sync"))

    imap_host: Mapped[str] = mapped_column(Text)
    imap_port: Mapped[int] = mapped_column(Integer)
    imap_security: Mapped[ConnectionSecurity] = mapped_column(
        db_enum(ConnectionSecurity, "imap_security")
    )
    imap_username: Mapped[str] = mapped_column(Text)
    auth_method: Mapped[AuthMethod] = mapped_column(
        db_enum(AuthMethod, "auth_method"), server_default=AuthMethod.PASSWORD.value
    )
    # AES-GCM ciphertexts bound to (account id, field); see core.crypto. NULL for OAuth2
    # accounts, whose tokens live in oauth_grants.
    imap_password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    smtp_host: Mapped[str | None] = mapped_column(Text)
    smtp_port: Mapped[int | None] = mapped_column(Integer)
    smtp_security: Mapped[ConnectionSecurity | None] = mapped_column(
        db_enum(ConnectionSecurity, "smtp_security")
    )
    smtp_username: Mapped[str | None] = mapped_column(Text)
    smtp_password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)

    last_error: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The scheduler's cursor: when this account is next due, and the backoff state.
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # When a sync was last asked for (syncNow, marks, new settings): a run that finds it
    # changed at its end makes the account due again (core/sync/requests.py).
    sync_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    # The sync run that holds the account (core/sync/claims.py) and until when: renewed
    # while it runs, cleared when it ends; a dead worker's claim runs out by itself.
    sync_claim: Mapped[uuid.UUID | None] = mapped_column()
    sync_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The next completed run is the first after startSync/reconnect (syncCompleted.initial).
    initial_sync_pending: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    @property
    def has_smtp(self) -> bool:
        return self.smtp_host is not None

    @property
    def uses_oauth(self) -> bool:
        return self.auth_method is not AuthMethod.PASSWORD
