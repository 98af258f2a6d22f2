"""delivery claims: the worker delivering an outgoing message holds a claim on its row (who,
until when) instead of a session-level advisory lock, so no PostgreSQL connection is held
while it talks to the SMTP server (core/claims.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outgoing_messages", sa.Column("delivery_claim", sa.Uuid(), nullable=True))
    op.add_column(
        "outgoing_messages",
        sa.Column("delivery_claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("outgoing_messages", "delivery_claimed_until")
    op.drop_column("outgoing_messages", "delivery_claim")
