"""oauth accounts: how each account authenticates, and the OAuth2 grants' tokens.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "mail_accounts",
        sa.Column(
            "auth_method",
            sa.Enum(
                "PASSWORD",
                "GOOGLE",
                "MICROSOFT",
                "GENERIC",
                name="auth_method",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="PASSWORD",
            nullable=False,
        ),
    )
    op.alter_column(
        "mail_accounts", "imap_password_encrypted", existing_type=sa.LargeBinary(), nullable=True
    )
    op.create_check_constraint(
        op.f("ck_mail_accounts_password_accounts_have_a_password"),
        "mail_accounts",
        "auth_method <> 'PASSWORD' OR imap_password_encrypted IS NOT NULL",
    )
    op.create_table(
        "oauth_grants",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("refresh_token_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("access_token_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mail_accounts.id"],
            name=op.f("fk_oauth_grants_account_id_mail_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_oauth_grants")),
    )


def downgrade() -> None:
    op.drop_table("oauth_grants")
    # OAuth2 accounts cannot log in without their tokens: they go with them.
    op.execute("DELETE FROM mail_accounts WHERE auth_method <> 'PASSWORD'")
    op.drop_constraint(
        op.f("ck_mail_accounts_password_accounts_have_a_password"), "mail_accounts", type_="check"
    )
    op.alter_column(
        "mail_accounts", "imap_password_encrypted", existing_type=sa.LargeBinary(), nullable=False
    )
    op.drop_column("mail_accounts", "auth_method")
