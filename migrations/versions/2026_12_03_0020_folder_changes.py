"""folder changes: a tally of the statements that changed a folder's messages, so a
count over a scope of folders can be kept until one of them changes.

``inbox.totalCount`` counts a scope's distinct messages: a scan of every message in scope
(0.3 to 0.9 s over 270,000 rows), asked for again by every page. Three statement-level
triggers on ``messages`` (insert, update, delete) append a row to ``folder_changes`` for
each folder the statement touched; a folder's version is the sum of its ``changes``.
Appending takes no lock another writer waits on (a counter row updated in place would be
held until commit by every writer of the folder: the sync's chunk, an API mark, and a
deadlock between them was one ordering away). The sum only ever grows with each commit,
so a count cached under the versions it was computed at (core/inbox/counts.py) is
exact for as long as those versions are current. ``compact`` in core/inbox/counts.py
folds a folder's rows into one without changing the sum.

A statement that leaves every count as it was says so for its transaction with
``mailsync.counts_unchanged = on`` (the search-vector catch-up: a waiting row matches a
search all the same).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per folder and transaction: a transaction that already appended one for the
# folder (the sync's flag updates go one execution per row) has moved its version for
# every later change too, as all of them become visible at its commit. A folder deleted in
# the same statement (an account's removal cascades to its folders and their messages)
# has nothing left to count, and gets no row (its foreign key would refuse one).
NOTE = """
CREATE FUNCTION note_folder_changes(folder_ids uuid[]) RETURNS void LANGUAGE sql AS $$
INSERT INTO folder_changes (folder_id)
SELECT f.id FROM folders f
WHERE f.id = ANY(folder_ids)
  AND NOT EXISTS (SELECT FROM folder_changes c
                  WHERE c.folder_id = f.id AND c.xmin = pg_current_xact_id()::xid)
$$
"""
FUNCTION = """
CREATE FUNCTION messages_note_folder_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mailsync.counts_unchanged', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM note_folder_changes(ARRAY(SELECT DISTINCT folder_id FROM changed_new));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM note_folder_changes(ARRAY(SELECT DISTINCT folder_id FROM changed_old));
    ELSE
        PERFORM note_folder_changes(ARRAY(
            SELECT folder_id FROM changed_new UNION SELECT folder_id FROM changed_old));
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    "messages_changes_insert": "AFTER INSERT ON messages REFERENCING NEW TABLE AS changed_new",
    "messages_changes_update": (
        "AFTER UPDATE ON messages REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new"
    ),
    "messages_changes_delete": "AFTER DELETE ON messages REFERENCING OLD TABLE AS changed_old",
}


def upgrade() -> None:
    op.create_table(
        "folder_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("folder_id", sa.Uuid(), nullable=False),
        sa.Column("changes", sa.BigInteger(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_folder_changes_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folder_changes")),
    )
    op.create_index(
        op.f("ix_folder_changes_folder_id"), "folder_changes", ["folder_id"], unique=False
    )
    op.execute(NOTE)
    op.execute(FUNCTION)
    for name, event in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {event} FOR EACH STATEMENT"
            " EXECUTE FUNCTION messages_note_folder_changes()"
        )


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON messages")
    op.execute("DROP FUNCTION messages_note_folder_changes()")
    op.execute("DROP FUNCTION note_folder_changes(uuid[])")
    op.drop_index(op.f("ix_folder_changes_folder_id"), table_name="folder_changes")
    op.drop_table("folder_changes")
