"""templates and CSV jobs

`templates` (per entity), `jobs` with their spooled file (`job_chunks`) and bad rows (`job_errors`), and
on `messages` the template a message was rendered from and the job row it came from (unique per job and
row: a resumed job never makes a row twice).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNFINISHED = "status IN ('pending', 'running')"


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_templates_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    op.create_index("uq_templates_entity_code", "templates", ["legal_entity_id", "code"], unique=True)
    op.create_table(
        "jobs",
        sa.Column("pk", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("template_text", sa.Text(), nullable=True),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("delimiter", sa.String(length=1), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("next_row", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_jobs_legal_entity_id_legal_entities"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_jobs")),
        sa.UniqueConstraint("id", name=op.f("uq_jobs_id")),
    )
    op.create_index("ix_jobs_entity_created", "jobs", ["legal_entity_id", "created_at", "pk"], unique=False)
    op.create_index("ix_jobs_created", "jobs", ["created_at", "pk"], unique=False)
    op.create_index(
        "ix_jobs_unfinished",
        "jobs",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text(UNFINISHED),
        sqlite_where=sa.text(UNFINISHED),
    )
    op.create_table(
        "job_chunks",
        sa.Column("job_pk", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_chunks_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_pk", "seq", name=op.f("pk_job_chunks")),
    )
    op.create_table(
        "job_errors",
        sa.Column("id", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("job_pk", sa.BigInteger(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_errors_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_errors")),
    )
    op.create_index("ix_job_errors_job_row", "job_errors", ["job_pk", "row", "id"], unique=False)
    # Plain ALTER TABLE on SQLite too (a batch copy would drop the change triggers of 0003).
    op.add_column("messages", sa.Column("template", sa.String(length=64), nullable=True))
    op.add_column("messages", sa.Column("job_id", sa.Uuid(), nullable=True))
    op.add_column("messages", sa.Column("job_row", sa.Integer(), nullable=True))
    op.create_index(
        "uq_messages_job_row",
        "messages",
        ["job_id", "job_row"],
        unique=True,
        postgresql_where=sa.text("job_id IS NOT NULL"),
        sqlite_where=sa.text("job_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_job_row", table_name="messages")
    op.drop_column("messages", "job_row")
    op.drop_column("messages", "job_id")
    op.drop_column("messages", "template")
    op.drop_index("ix_job_errors_job_row", table_name="job_errors")
    op.drop_table("job_errors")
    op.drop_table("job_chunks")
    op.drop_index("ix_jobs_unfinished", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_entity_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("uq_templates_entity_code", table_name="templates")
    op.drop_table("templates")
