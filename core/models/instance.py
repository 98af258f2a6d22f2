from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at


class InstanceSecret(Base):
    """Keys this installation made for itself at migration time and must never change
    (unlike MAILSYNC_SECRET_KEYS, which rotate): e.g. the key of the API's message ids."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at()
