from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.models.enums import Plan, Role


@dataclass(frozen=True)
class Viewer:
    """Who is calling: a snapshot taken when the request was authenticated."""

    user_id: uuid.UUID
    company_id: uuid.UUID
    role: Role
    plan: Plan
    token_id: uuid.UUID | None = None  # the API token the request came with

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
