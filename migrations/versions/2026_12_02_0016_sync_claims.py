"""sync claims: the run that holds an account is a row lease (who, until when) instead of a
session-level advisory lock on a second connection, so a running sync uses at most one
PostgreSQL connection and none while it waits on the mail server.

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mail_accounts", sa.Column("sync_claim", sa.Uuid(), nullable=True))
    op.add_column(
        "mail_accounts",
        sa.Column("sync_claimed_until", sa.DateTime(timezone=True), nullable=True),
    )
    # The scheduler looks for claims that ran out (their worker died) on every tick.
    op.create_index(
        "ix_mail_accounts_sync_claimed_until",
        "mail_accounts",
        ["sync_claimed_until"],
        postgresql_where=sa.text("sync_claim IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_mail_accounts_sync_claimed_until", table_name="mail_accounts")
    op.drop_column("mail_accounts", "sync_claimed_until")
    op.drop_column("mail_accounts", "sync_claim")
