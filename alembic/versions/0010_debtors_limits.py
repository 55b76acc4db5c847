"""230-FZ counting per person and limit group, rolling windows, unknown zones, interactions made elsewhere

- `fz_counters` and `fz_releases` are keyed by (scope, subject) instead of (entity, number): a scope is
  an entity ("e:<id>") or a `fz.limit_group` ("g:<name>"), a subject a number (E.164) or a debtor
  ("d:<id>"). The counts of before are copied over as the entity's and the number's.
- `fz_minutes`: counts per UTC minute, for the rolling windows.
- `fz_interactions`: interactions reported through POST .../interactions.
- `messages.debtor` (and its index), `messages.fz_counted_at`.
- `legal_entities.fz_limit_group`, `fz_rolling_windows`, `fz_unknown_zone`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
HAS_DEBTOR = sa.text("debtor IS NOT NULL")


def _counters(name: str) -> None:
    op.create_table(
        name,
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=140), nullable=False),
        sa.Column("period", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name=op.f("ck_fz_counters_period")),
        sa.PrimaryKeyConstraint("scope", "subject", "period", "period_start", name=op.f("pk_fz_counters")),
    )


def upgrade() -> None:
    # Plain ALTER TABLE on messages (a batch copy on SQLite would drop its change triggers).
    op.add_column("messages", sa.Column("debtor", sa.String(length=128), nullable=True))
    op.add_column("messages", sa.Column("fz_counted_at", WHEN, nullable=True))
    op.create_index(
        "ix_messages_entity_debtor",
        "messages",
        ["legal_entity_id", "debtor"],
        postgresql_where=HAS_DEBTOR,
        sqlite_where=HAS_DEBTOR,
    )
    op.add_column("legal_entities", sa.Column("fz_limit_group", sa.String(length=64), nullable=True))
    op.add_column(
        "legal_entities",
        sa.Column("fz_rolling_windows", sa.Boolean(), nullable=False, server_default="false"),
    )
    op.add_column(
        "legal_entities",
        sa.Column("fz_unknown_zone", sa.String(length=10), nullable=False, server_default="entity"),
    )

    # The counters change key: new tables, the old rows copied as (entity, number), the old ones dropped.
    op.drop_index("ix_fz_counters_period_start", table_name="fz_counters")
    op.rename_table("fz_counters", "fz_counters_old")
    if op.get_bind().dialect.name == "postgresql":
        # The old primary key's name stays with the renamed table: free it for the new one.
        op.execute("ALTER TABLE fz_counters_old RENAME CONSTRAINT pk_fz_counters TO pk_fz_counters_old")
        op.execute("ALTER TABLE fz_counters_old RENAME CONSTRAINT ck_fz_counters_period TO ck_fz_old")
    _counters("fz_counters")
    op.execute(
        "INSERT INTO fz_counters (scope, subject, period, period_start, count) "
        "SELECT 'e:' || CAST(legal_entity_id AS VARCHAR), recipient, period, period_start, count "
        "FROM fz_counters_old"
    )
    op.drop_table("fz_counters_old")
    op.create_index(op.f("ix_fz_counters_period_start"), "fz_counters", ["period_start"], unique=False)

    op.drop_index("ix_fz_releases_legal_entity_id_recipient", table_name="fz_releases")
    op.rename_table("fz_releases", "fz_releases_old")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fz_releases_old RENAME CONSTRAINT pk_fz_releases TO pk_fz_releases_old")
    op.create_table(
        "fz_releases",
        sa.Column("id", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=140), nullable=False),
        sa.Column("counted_on", sa.Date(), nullable=False),
        sa.Column("counted_minute", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fz_releases")),
    )
    op.execute(
        "INSERT INTO fz_releases (scope, subject, counted_on) "
        "SELECT 'e:' || CAST(legal_entity_id AS VARCHAR), recipient, counted_on FROM fz_releases_old"
    )
    op.drop_table("fz_releases_old")
    op.create_index(op.f("ix_fz_releases_scope_subject"), "fz_releases", ["scope", "subject"], unique=False)

    op.create_table(
        "fz_minutes",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=140), nullable=False),
        sa.Column("minute", WHEN, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", "minute", name=op.f("pk_fz_minutes")),
    )
    op.create_index(op.f("ix_fz_minutes_minute"), "fz_minutes", ["minute"], unique=False)

    op.create_table(
        "fz_interactions",
        sa.Column("id", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=True),
        sa.Column("debtor", sa.String(length=128), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_fz_interactions_legal_entity_id_legal_entities"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fz_interactions")),
    )
    op.create_index(
        op.f("ix_fz_interactions_legal_entity_id_debtor_at"),
        "fz_interactions",
        ["legal_entity_id", "debtor", "at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_fz_interactions_legal_entity_id_recipient_at"),
        "fz_interactions",
        ["legal_entity_id", "recipient", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("fz_interactions")
    op.drop_table("fz_minutes")
    # The per-entity, per-number counts go back (those of debtors and groups cannot: they are dropped).
    op.drop_table("fz_releases")
    op.create_table(
        "fz_releases",
        sa.Column("id", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("counted_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_fz_releases_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fz_releases")),
    )
    op.create_index(
        op.f("ix_fz_releases_legal_entity_id_recipient"),
        "fz_releases",
        ["legal_entity_id", "recipient"],
        unique=False,
    )
    op.drop_index(op.f("ix_fz_counters_period_start"), table_name="fz_counters")
    op.rename_table("fz_counters", "fz_counters_new")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fz_counters_new RENAME CONSTRAINT pk_fz_counters TO pk_fz_counters_new")
        op.execute("ALTER TABLE fz_counters_new RENAME CONSTRAINT ck_fz_counters_period TO ck_fz_new")
    op.create_table(
        "fz_counters",
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name=op.f("ck_fz_counters_period")),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_fz_counters_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "legal_entity_id", "recipient", "period", "period_start", name=op.f("pk_fz_counters")
        ),
    )
    op.execute(
        "INSERT INTO fz_counters (legal_entity_id, recipient, period, period_start, count) "
        "SELECT CAST(substr(scope, 3) AS INTEGER), subject, period, period_start, count "
        "FROM fz_counters_new WHERE scope LIKE 'e:%' AND subject LIKE '+%'"
    )
    op.drop_table("fz_counters_new")
    op.create_index(op.f("ix_fz_counters_period_start"), "fz_counters", ["period_start"], unique=False)
    op.drop_column("legal_entities", "fz_unknown_zone")
    op.drop_column("legal_entities", "fz_rolling_windows")
    op.drop_column("legal_entities", "fz_limit_group")
    op.drop_index("ix_messages_entity_debtor", table_name="messages")
    op.drop_column("messages", "fz_counted_at")
    op.drop_column("messages", "debtor")
