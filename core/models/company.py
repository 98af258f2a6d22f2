from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, created_at, uuid_pk
from core.models.enums import Plan, db_enum


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, unique=True)
    plan: Mapped[Plan] = mapped_column(db_enum(Plan, "plan"))
    created_at: Mapped[datetime] = created_at()
