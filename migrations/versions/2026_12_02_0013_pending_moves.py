"""moves and deletes made in the inbox, waiting to be written back to the IMAP server;
why one could not be (on the message).

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("write_back_error", sa.Text(), nullable=True))
    op.create_table(
        "pending_moves",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("source_folder_id", sa.Uuid(), nullable=False),
        sa.Column("source_uid", sa.BigInteger(), nullable=False),
        sa.Column("source_uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("target_folder_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_pending_moves_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mail_accounts.id"],
            name=op.f("fk_pending_moves_account_id_mail_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_folder_id"],
            ["folders.id"],
            name=op.f("fk_pending_moves_source_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_folder_id"],
            ["folders.id"],
            name=op.f("fk_pending_moves_target_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_moves")),
        sa.UniqueConstraint("message_id", name=op.f("uq_pending_moves_message_id")),
    )
    op.create_index(
        op.f("ix_pending_moves_account_id"), "pending_moves", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("pending_moves")
    op.drop_column("messages", "write_back_error")
