"""thread_keys: each user's Message-ID -> conversation index, filled from stored mail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:35:44.800520
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "thread_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_thread_keys_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "key", name=op.f("pk_thread_keys")),
    )
    # Messages stored before this table existed: their own ids join their threads.
    op.execute(
        """
        INSERT INTO thread_keys (owner_id, key, thread_id)
        SELECT a.owner_id, m.message_id, m.thread_id
        FROM messages m JOIN mail_accounts a ON a.id = m.account_id
        WHERE m.message_id IS NOT NULL
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.drop_table("thread_keys")
