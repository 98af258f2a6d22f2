"""outgoing_messages: what users send, its delivery state and its Sent-folder copy.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:24:56.360022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outgoing_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("from_address", sa.Text(), nullable=False),
        sa.Column("from_name", sa.Text(), nullable=True),
        sa.Column("to_addresses", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("cc_addresses", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("bcc_addresses", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.Text(), nullable=True),
        sa.Column("references", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("automated", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("mime", sa.LargeBinary(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "QUEUED",
                "SENT",
                "FAILED",
                name="send_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("smtp_data_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "sent_copy",
            sa.Enum(
                "PENDING",
                "APPENDED",
                "BY_SERVER",
                "NO_FOLDER",
                "FAILED",
                name="sent_copy",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="PENDING",
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mail_accounts.id"],
            name=op.f("fk_outgoing_messages_account_id_mail_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_outgoing_messages_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outgoing_messages_message_id")),
    )
    op.create_index(
        op.f("ix_outgoing_messages_account_id"), "outgoing_messages", ["account_id"], unique=False
    )
    op.create_index(
        "ix_outgoing_messages_owner_created",
        "outgoing_messages",
        ["owner_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_outgoing_messages_status"), "outgoing_messages", ["status"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outgoing_messages_status"), table_name="outgoing_messages")
    op.drop_index("ix_outgoing_messages_owner_created", table_name="outgoing_messages")
    op.drop_index(op.f("ix_outgoing_messages_account_id"), table_name="outgoing_messages")
    op.drop_table("outgoing_messages")
