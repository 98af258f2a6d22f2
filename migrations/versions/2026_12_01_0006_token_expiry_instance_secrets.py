"""token expiry, and the installation's own secrets (the key of the API's message ids).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:10:00
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    secrets = op.create_table(
        "instance_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )
    # Made once, here: message ids in the API are enciphered with it for good.
    op.bulk_insert(secrets, [{"name": "message_ids", "value": os.urandom(16)}])


def downgrade() -> None:
    op.drop_table("instance_secrets")
    op.drop_column("api_tokens", "expires_at")
