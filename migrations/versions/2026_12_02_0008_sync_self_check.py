"""the sync's self-check and content fingerprints: the past-sync window and the mail it
leaves out per folder, and a fingerprint per message.

Folders indexed before this get the window their account's past-sync setting gives from
now on (an approximation of when they were first indexed) and an unknown unsynced count,
so their next run counts the server's mail once, by UIDs (no bodies).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("folders", sa.Column("window_start", sa.DateTime(timezone=True), nullable=True))
    op.add_column("folders", sa.Column("window_end_uid", sa.BigInteger(), nullable=True))
    op.add_column(
        "folders", sa.Column("unsynced_count", sa.Integer(), server_default="0", nullable=True)
    )
    op.add_column("messages", sa.Column("fingerprint", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE folders AS f
        SET window_start = CASE a.past_sync
                WHEN 'ALL' THEN NULL
                WHEN 'NONE' THEN coalesce(f.created_at, now())
                WHEN 'ONE_MONTH' THEN now() - interval '31 days'
                WHEN 'THREE_MONTHS' THEN now() - interval '92 days'
                WHEN 'SIX_MONTHS' THEN now() - interval '183 days'
                WHEN 'ONE_YEAR' THEN now() - interval '366 days'
                ELSE now() - interval '31 days'
            END,
            window_end_uid = CASE WHEN a.past_sync = 'ALL' THEN NULL ELSE f.highest_uid + 1 END,
            unsynced_count = CASE WHEN a.past_sync = 'ALL' THEN 0 ELSE NULL END
        FROM mail_accounts AS a
        WHERE a.id = f.account_id AND f.uidvalidity IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_column("messages", "fingerprint")
    op.drop_column("folders", "unsynced_count")
    op.drop_column("folders", "window_end_uid")
    op.drop_column("folders", "window_start")
