"""messages: no foreign key to legal_entities; an inserted row's change position is its column default

Both were per-row work on every message accepted, in the database's own process:
- the foreign key's check looked up and locked the entity's row for each message (FOR KEY SHARE: with
  several requests of one entity at once, a new MultiXact per insert). Entities are never deleted
  (DELETE deactivates them) and a message's entity id comes from the entity it was checked against;
- the trigger that set `change_seq` ran a PL/pgSQL call per inserted row. On PostgreSQL the column's
  default is now the writing transaction's id (what the trigger set), so COPY and the raw insert
  paths, which do not name the column, get it for nothing; the trigger remains for a row inserted with
  change_seq 0 (SQLAlchemy's own inserts send the model's 0) and for status changes, each behind a
  WHEN condition that PostgreSQL evaluates without calling the function.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None

NAME = "fk_messages_legal_entity_id_legal_entities"

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION smsqueue_message_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER messages_change_insert BEFORE INSERT ON messages FOR EACH ROW "
    "WHEN (NEW.change_seq = 0) EXECUTE FUNCTION smsqueue_message_change()",
    "CREATE TRIGGER messages_change_update BEFORE UPDATE OF event_seq ON messages FOR EACH ROW "
    "WHEN (NEW.event_seq IS DISTINCT FROM OLD.event_seq) EXECUTE FUNCTION smsqueue_message_change()",
)
PG_DEFAULT = "ALTER TABLE messages ALTER COLUMN change_seq SET DEFAULT pg_current_xact_id()::text::bigint"

# Migration 0003's, as they were: SQLite alters a constraint by copying the table, which loses them.
SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER messages_change_insert AFTER INSERT ON messages
    BEGIN
        UPDATE messages SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM messages)
        WHERE pk = NEW.pk;
    END
    """,
    """
    CREATE TRIGGER messages_change_update AFTER UPDATE OF event_seq ON messages
    WHEN NEW.event_seq IS NOT OLD.event_seq
    BEGIN
        UPDATE messages SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM messages)
        WHERE pk = NEW.pk;
    END
    """,
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(NAME, "messages", type_="foreignkey")
        op.execute("DROP TRIGGER messages_change ON messages")
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        op.execute(PG_DEFAULT)
        return
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(NAME, type_="foreignkey")
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages ALTER COLUMN change_seq SET DEFAULT 0")
        op.execute("DROP TRIGGER messages_change_insert ON messages")
        op.execute("DROP TRIGGER messages_change_update ON messages")
        op.execute(
            "CREATE OR REPLACE FUNCTION smsqueue_message_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF TG_OP = 'INSERT' OR NEW.event_seq IS DISTINCT FROM OLD.event_seq THEN "
            "NEW.change_seq := pg_current_xact_id()::text::bigint; END IF; RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER messages_change BEFORE INSERT OR UPDATE OF event_seq ON messages "
            "FOR EACH ROW EXECUTE FUNCTION smsqueue_message_change()"
        )
        op.create_foreign_key(
            NAME, "messages", "legal_entities", ["legal_entity_id"], ["id"], ondelete="RESTRICT"
        )
        return
    with op.batch_alter_table("messages") as batch:
        batch.create_foreign_key(NAME, "legal_entities", ["legal_entity_id"], ["id"], ondelete="RESTRICT")
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)
