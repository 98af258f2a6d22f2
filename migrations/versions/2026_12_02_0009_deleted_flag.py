"""messages marked \\Deleted on the server (not expunged yet), hidden from the inbox.

Rows stored before this are taken as not deleted; every synced folder forgets its MODSEQ
and its last flag scan, so that its next run reads all its flags once and corrects them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("is_deleted", sa.Boolean(), server_default="false", nullable=False),
    )
    op.execute(
        "UPDATE folders SET highest_modseq = NULL, last_full_flag_scan_at = NULL"
        " WHERE uidvalidity IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("messages", "is_deleted")
