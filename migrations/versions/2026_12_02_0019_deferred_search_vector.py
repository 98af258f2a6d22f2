"""deferred search vector: a bulk sync may store rows first and their search vector after.

``messages.search_vector`` stops being a stored generated column. A trigger computes it on
insert as before (through one SQL function, ``message_search_vector``), unless the inserting
transaction said ``mailsync.defer_search_vector = on``: the sync's bulk chunks do, so the
first sync of a mailbox is not held up by ``to_tsvector`` and the GIN index, and
core/sync/search_index.py fills the vectors right after the run. Rows still waiting
(``search_vector IS NULL``) have a partial index, and search computes their vector on the
fly, so it finds them all the same. Existing rows keep their vectors: dropping the
expression rewrites nothing.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expression of revision 0005 over the function's arguments (a frozen copy: the
# function is the one definition from here on, core.models.message refers to it).
_ADDRESSES = (
    "coalesce(from_name, '') || ' ' || coalesce(from_address, '') || ' '"
    " || jsonb_path_query_array(to_addresses, '$[*].*')::text || ' '"
    " || jsonb_path_query_array(cc_addresses, '$[*].*')::text"
)
FUNCTION = f"""
CREATE FUNCTION message_search_vector(
    subject text, from_name text, from_address text, to_addresses jsonb,
    cc_addresses jsonb, body_text text
) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A')
    || setweight(to_tsvector('simple'::regconfig, {_ADDRESSES}), 'B')
    || setweight(to_tsvector('simple'::regconfig,
                             regexp_replace({_ADDRESSES}, '@', ' ', 'g')), 'B')
    || setweight(to_tsvector('simple'::regconfig,
                             left(coalesce(body_text, ''), 100000)), 'C')
$$
"""
TRIGGER_FUNCTION = """
CREATE FUNCTION messages_fill_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector := message_search_vector(
        NEW.subject, NEW.from_name, NEW.from_address, NEW.to_addresses, NEW.cc_addresses,
        NEW.body_text);
    RETURN NEW;
END
$$
"""
# The WHEN is evaluated without calling the function: a deferred bulk insert pays for the
# setting's lookup only.
TRIGGER = """
CREATE TRIGGER messages_search_vector BEFORE INSERT ON messages FOR EACH ROW
WHEN (NEW.search_vector IS NULL
      AND current_setting('mailsync.defer_search_vector', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION messages_fill_search_vector()
"""


def upgrade() -> None:
    op.execute("ALTER TABLE messages ALTER COLUMN search_vector DROP EXPRESSION")
    op.execute(FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)
    op.create_index(
        "ix_messages_search_pending",
        "messages",
        ["account_id"],
        postgresql_where=sa.text("search_vector IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_search_pending", table_name="messages")
    op.execute("DROP TRIGGER messages_search_vector ON messages")
    op.execute("DROP FUNCTION messages_fill_search_vector()")
    op.execute("DROP FUNCTION message_search_vector(text, text, text, jsonb, jsonb, text)")
    # A generated column again: computed for every row, the waiting ones too.
    op.drop_index("ix_messages_search", table_name="messages", postgresql_using="gin")
    op.drop_column("messages", "search_vector")
    op.add_column(
        "messages",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(_SEARCH_VECTOR_0005, persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_messages_search", "messages", ["search_vector"], postgresql_using="gin")


_SEARCH_VECTOR_0005 = (
    "setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A')"
    f" || setweight(to_tsvector('simple'::regconfig, {_ADDRESSES}), 'B')"
    " || setweight(to_tsvector('simple'::regconfig,"
    f" regexp_replace({_ADDRESSES}, '@', ' ', 'g')), 'B')"
    " || setweight(to_tsvector('simple'::regconfig, left(coalesce(body_text, ''), 100000)), 'C')"
)
