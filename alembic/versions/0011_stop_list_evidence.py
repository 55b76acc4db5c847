"""stop list, identification (137-FZ) and rule decisions (issue 10)

- `stop_list_entries`: numbers and debtors an entity (or its limit group) may not write to;
- `rule_decisions`: each decision of the sender's rules step about a message, with the counts it saw;
- `legal_entities.creditor_name`, `contact_phone`, `fz_identification`;
(`messages.debtor`, which the stop list and the evidence read, comes with 0010.)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stop_list_entries",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=140), nullable=False),
        sa.Column("kind", sa.String(length=6), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_entity_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('number', 'debtor')", name=op.f("ck_stop_list_entries_kind")),
        sa.CheckConstraint(
            "reason IN ('refused', 'representative_only', 'protected', 'wrong_number', 'other')",
            name=op.f("ck_stop_list_entries_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_stop_list_entries_legal_entity_id_legal_entities"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stop_list_entries")),
    )
    op.create_index(
        "uq_stop_list_entries_scope_kind_value", "stop_list_entries", ["scope", "kind", "value"], unique=True
    )
    op.create_index(op.f("ix_stop_list_entries_scope_id"), "stop_list_entries", ["scope", "id"])
    op.create_index(op.f("ix_stop_list_entries_legal_entity_id"), "stop_list_entries", ["legal_entity_id"])
    op.create_table(
        "rule_decisions",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('allowed', 'deferred', 'rejected')", name=op.f("ck_rule_decisions_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.pk"],
            name=op.f("fk_rule_decisions_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_decisions")),
    )
    op.create_index(op.f("ix_rule_decisions_message_pk_id"), "rule_decisions", ["message_pk", "id"])
    # Plain ALTER TABLE ADD COLUMN on both backends (a batch copy would drop the SQLite triggers).
    op.add_column("legal_entities", sa.Column("creditor_name", sa.String(length=300), nullable=True))
    op.add_column("legal_entities", sa.Column("contact_phone", sa.String(length=32), nullable=True))
    op.add_column(
        "legal_entities",
        sa.Column("fz_identification", sa.String(length=8), server_default="off", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("legal_entities", "fz_identification")
    op.drop_column("legal_entities", "contact_phone")
    op.drop_column("legal_entities", "creditor_name")
    op.drop_index(op.f("ix_rule_decisions_message_pk_id"), table_name="rule_decisions")
    op.drop_table("rule_decisions")
    op.drop_index(op.f("ix_stop_list_entries_legal_entity_id"), table_name="stop_list_entries")
    op.drop_index(op.f("ix_stop_list_entries_scope_id"), table_name="stop_list_entries")
    op.drop_index("uq_stop_list_entries_scope_kind_value", table_name="stop_list_entries")
    op.drop_table("stop_list_entries")
