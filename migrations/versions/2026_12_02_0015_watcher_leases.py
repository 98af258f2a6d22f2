"""watcher_leases: which worker watches an account's INBOX with IMAP IDLE, and until when.

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watcher_leases",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idle", sa.Boolean(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("established_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mail_accounts.id"],
            name=op.f("fk_watcher_leases_account_id_mail_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_watcher_leases")),
    )
    op.create_index(
        op.f("ix_watcher_leases_expires_at"), "watcher_leases", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_watcher_leases_expires_at"), table_name="watcher_leases")
    op.drop_table("watcher_leases")
