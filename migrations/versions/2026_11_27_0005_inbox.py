"""inbox: search vector, keyset and Message-ID indexes, flags pending write-back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of core.models.message.SEARCH_VECTOR as of this revision.
SEARCH_VECTOR = "setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A') || setweight(to_tsvector('simple'::regconfig, coalesce(from_name, '') || ' ' || coalesce(from_address, '') || ' ' || jsonb_path_query_array(to_addresses, '$[*].*')::text || ' ' || jsonb_path_query_array(cc_addresses, '$[*].*')::text), 'B') || setweight(to_tsvector('simple'::regconfig, regexp_replace(coalesce(from_name, '') || ' ' || coalesce(from_address, '') || ' ' || jsonb_path_query_array(to_addresses, '$[*].*')::text || ' ' || jsonb_path_query_array(cc_addresses, '$[*].*')::text, '@', ' ', 'g')), 'B') || setweight(to_tsvector('simple'::regconfig, left(coalesce(body_text, ''), 100000)), 'C')"


def upgrade() -> None:
    for column in ("read_pending", "flagged_pending"):
        op.add_column(
            "messages",
            sa.Column(column, sa.Boolean(), server_default="false", nullable=False),
        )
    # A stored generated column: every existing row is indexed now, every new one on insert.
    op.add_column(
        "messages",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_VECTOR, persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_messages_search", "messages", ["search_vector"], postgresql_using="gin")
    op.create_index(
        "ix_messages_flags_pending",
        "messages",
        ["account_id"],
        postgresql_where=sa.text("read_pending OR flagged_pending"),
    )
    op.create_index("ix_messages_folder_date", "messages", ["folder_id", "date", "id"])
    op.drop_index("ix_messages_account_date", table_name="messages")
    # Message-ID first: one index descent per copy lookup, not one per account in view.
    op.create_index("ix_messages_message_id", "messages", ["message_id", "account_id"])
    op.drop_index("ix_messages_account_message_id", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_account_message_id", "messages", ["account_id", "message_id"])
    op.drop_index("ix_messages_message_id", table_name="messages")
    op.create_index("ix_messages_account_date", "messages", ["account_id", "date", "id"])
    op.drop_index("ix_messages_folder_date", table_name="messages")
    op.drop_index("ix_messages_flags_pending", table_name="messages")
    op.drop_index("ix_messages_search", table_name="messages", postgresql_using="gin")
    op.drop_column("messages", "search_vector")
    op.drop_column("messages", "flagged_pending")
    op.drop_column("messages", "read_pending")
