"""Sync state: each folder's UIDNEXT and backfill cursor, the account's initial-run flag.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:08:40.613592
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("folders", sa.Column("uidnext", sa.BigInteger(), nullable=True))
    op.add_column("folders", sa.Column("backfill_before_uid", sa.BigInteger(), nullable=True))
    op.add_column(
        "mail_accounts",
        sa.Column("initial_sync_pending", sa.Boolean(), server_default="false", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("mail_accounts", "initial_sync_pending")
    op.drop_column("folders", "backfill_before_uid")
    op.drop_column("folders", "uidnext")
