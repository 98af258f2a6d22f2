"""refresh claims: the process refreshing an OAuth2 account's tokens holds a claim on its
grant (who, until when) instead of a session-level advisory lock, so no PostgreSQL
connection is held while the provider's token endpoint answers (core/claims.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("oauth_grants", sa.Column("refresh_claim", sa.Uuid(), nullable=True))
    op.add_column(
        "oauth_grants",
        sa.Column("refresh_claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("oauth_grants", "refresh_claimed_until")
    op.drop_column("oauth_grants", "refresh_claim")
