"""Campaign tables: message templates per entity, and CSV jobs (their spooled file, their bad rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.clock import now
from smsqueue.models.base import Base, BigPK, partial_index


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (Index("uq_templates_entity_code", "legal_entity_id", "code", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    legal_entity_id: Mapped[int] = mapped_column(ForeignKey("legal_entities.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class Job(Base):
    """A CSV file to send. The file itself is spooled into `job_chunks`; `next_row` is how many data
    records have been turned into messages or errors (committed with them, so a resumed job starts
    exactly there); `lease_until` says until when the worker running it holds it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_entity_created", "legal_entity_id", "created_at", "pk"),
        Index("ix_jobs_created", "created_at", "pk"),
        # The resume sweep reads only the jobs still to run.
        Index("ix_jobs_unfinished", "lease_until", **partial_index("status IN ('pending', 'running')")),
    )

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    legal_entity_id: Mapped[int] = mapped_column(ForeignKey("legal_entities.id", ondelete="RESTRICT"))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))
    template: Mapped[str | None] = mapped_column(String(64))
    template_text: Mapped[str | None] = mapped_column(Text)  # as it was when the job was created
    send_at: Mapped[datetime | None] = mapped_column()
    callback_url: Mapped[str | None] = mapped_column(Text)
    delimiter: Mapped[str] = mapped_column(String(1))
    columns: Mapped[list[str]] = mapped_column(JSON)  # the header row
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int | None] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    next_row: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=now)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobChunk(Base):
    """A piece of a job's file as uploaded (about 1 MiB), in order: web and workers never hold the
    whole file, and any worker can read it (no shared disk needed)."""

    __tablename__ = "job_chunks"

    job_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("jobs.pk", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class JobError(Base):
    """One invalid field of a row of a job (a row may have several)."""

    __tablename__ = "job_errors"
    __table_args__ = (Index("ix_job_errors_job_row", "job_pk", "row", "id"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    job_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("jobs.pk", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(300))


__all__: list[Any] = ["Job", "JobChunk", "JobError", "Template"]
