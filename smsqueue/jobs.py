"""CSV jobs: created with their file spooled, run in batches by a worker, resumed, canceled, read.

Running is a loop of transactions, each taking the next `job_batch_rows` records of the file: their
messages (through `ingest.store`, the batch API's path), their errors and the job's progress are
committed together, so a job whose worker dies resumes exactly after its last committed batch; the
progress is a compare-and-set on `next_row` and each row's message is unique per (job, row), so no row
is ever stored twice, even by two workers. No Celery here: `run` yields the pks to ring.
"""

from __future__ import annotations

import csv
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import Connection, String, and_, any_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from smsqueue import ingest, job_files, job_rows, metrics
from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.errors import FieldError
from smsqueue.ids import new_id
from smsqueue.messages import cancel_many, messages_t
from smsqueue.models import Job, JobError, LegalEntity
from smsqueue.rules.identification import Identification
from smsqueue.statuses import CANCELABLE, JOB_UNFINISHED, JobStatus, Status

log = logging.getLogger(__name__)
jobs_t = Job.__table__
errors_t = JobError.__table__
j = jobs_t.c
m = messages_t.c
_UNFINISHED = sorted(s.value for s in JOB_UNFINISHED)


def identification_of(entity_id: int) -> Identification:
    """The entity's 137-FZ rule as it is now: every row's text gets it, as a single message's does."""
    e = LegalEntity.__table__.c
    with transaction() as conn:
        row = conn.execute(
            select(e.fz_identification, e.fz_enabled, e.creditor_name, e.contact_phone).where(
                e.id == entity_id
            )
        ).one()
    return Identification.of(row)


class JobStopped(Exception):
    """The job was canceled, or another worker moved it on: this worker lets it be."""


def create(
    *,
    entity_id: int,
    header: job_files.Header,
    stream: IO[bytes],
    name: str | None,
    template: str | None,
    template_text: str | None,
    send_at: datetime | None,
    callback_url: str | None,
) -> Any:
    """Store a job and its whole file in one transaction: a file found bad on the way (not UTF-8, too
    large) leaves nothing behind. Raises job_rows.HeaderProblem, job_files.CsvProblem, TooLarge."""
    ident = new_id()
    job_rows.layout(  # the header's check, before anything is stored
        header.columns,
        template=template,
        template_text=template_text,
        entity_id=entity_id,
        callback_url=callback_url,
        send_at=send_at,
        job_id=ident,
        identification=identification_of(entity_id),
    )
    at = now()
    with transaction() as conn:
        pk = conn.execute(
            insert(jobs_t)
            .values(
                id=ident,
                legal_entity_id=entity_id,
                name=name,
                status=JobStatus.PENDING.value,
                template=template,
                template_text=template_text,
                send_at=send_at,
                callback_url=callback_url,
                delimiter=header.delimiter,
                columns=header.columns,
                size_bytes=0,
                accepted=0,
                invalid=0,
                next_row=0,
                # A pending job nobody started by then (its task was lost) is started by the sweep.
                lease_until=at + timedelta(seconds=settings().lost_publish_after),
                created_at=at,
            )
            .returning(j.pk)
        ).scalar_one()
        size = job_files.spool(conn, pk, header, stream)
        conn.execute(update(jobs_t).where(j.pk == pk).values(size_bytes=size))
        return conn.execute(select(jobs_t).where(j.pk == pk)).one()


def claim(job_pk: int) -> Any | None:
    """Take the job to run: a pending one, or a running one whose worker's hold ran out."""
    at = now()
    with transaction() as conn:
        return conn.execute(
            update(jobs_t)
            .where(
                j.pk == job_pk,
                or_(
                    j.status == JobStatus.PENDING.value,
                    and_(j.status == JobStatus.RUNNING.value, j.lease_until < at),
                ),
            )
            .values(
                status=JobStatus.RUNNING.value,
                started_at=func.coalesce(j.started_at, at),
                lease_until=at + timedelta(seconds=settings().job_lease_seconds),
            )
            .returning(*jobs_t.c)
        ).first()


def due_for_resume(at: datetime | None = None) -> list[int]:
    """Jobs to (re)start: unfinished, and nobody's hold on them is live. Each goes back to pending
    (its progress kept) with a new start-by time, so that it is published once per grace period, not
    on every sweep, until a worker takes it."""
    at = at or now()
    with transaction() as conn:
        due = select(j.pk).where(j.status.in_(_UNFINISHED), j.lease_until < at).order_by(j.pk).limit(100)
        return list(
            conn.execute(
                update(jobs_t)
                .where(j.pk.in_(due.scalar_subquery()))
                .values(
                    status=JobStatus.PENDING.value,
                    lease_until=at + timedelta(seconds=settings().lost_publish_after),
                )
                .returning(j.pk)
            ).scalars()
        )


class _Progress:
    def __init__(self, job: Any) -> None:
        self.job = job
        self.next_row = job.next_row
        self.accepted = job.accepted
        self.invalid = job.invalid


def run(job_pk: int) -> Iterator[list[int]]:
    """Run the job from where it stopped; after each committed batch, the pks of its queued messages."""
    job = claim(job_pk)
    if job is None:
        return
    lay = job_rows.layout(
        job.columns,
        template=job.template,
        template_text=job.template_text,
        entity_id=job.legal_entity_id,
        callback_url=job.callback_url,
        send_at=job.send_at,
        job_id=job.id,
        identification=identification_of(job.legal_entity_id),
    )
    progress = _Progress(job)
    size = max(1, settings().job_batch_rows)
    batch: list[tuple[int, list[str]]] = []
    consumed = 0
    # Rows are checked here while the batch before is stored by the writer thread (the database's
    # work and ours overlap); batches are stored one after the other, in order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-writer") as writer:
        pending: Future[list[int]] | None = None
        try:
            for values in job_files.records(job_pk, job.delimiter):
                consumed += 1
                if consumed <= progress.next_row:
                    continue  # committed before a restart
                batch.append((consumed + 1, values))  # row numbers count the header as row 1
                if len(batch) >= size:
                    checked = _check_rows(lay, batch)
                    if pending is not None:
                        yield pending.result()
                    pending = writer.submit(_store, lay, progress, checked, consumed, False)
                    batch = []
            checked = _check_rows(lay, batch)
            if pending is not None:
                yield pending.result()
                pending = None
            yield _store(lay, progress, checked, consumed, True)
        except csv.Error as exc:
            # Only a cell over the size limit gets here (the reader is lenient otherwise): the rest of
            # the file cannot be read reliably, so the job fails with that row listed.
            if pending is not None:
                yield pending.result()
            _fail(progress, consumed + 2, str(exc))
        except (JobStopped, IntegrityError):
            log.info("job %s stopped (canceled, or taken on elsewhere)", job.id)


_Checked = tuple[list[ingest.Prepared], list[tuple[int, FieldError]]]


def _check_rows(lay: job_rows.Layout, batch: list[tuple[int, list[str]]]) -> _Checked:
    prepared: list[ingest.Prepared] = []
    bad: list[tuple[int, FieldError]] = []
    for row, values in batch:
        if not "".join(values).strip():
            continue  # a blank line: not a row
        result = job_rows.prepare(values, row, lay)
        if isinstance(result, list):
            bad.extend((row, e) for e in result)
        else:
            prepared.append(result)
    return prepared, bad


def _store(lay: job_rows.Layout, progress: _Progress, checked: _Checked, upto: int, final: bool) -> list[int]:
    """Store a checked batch with its errors and the job's progress, in one transaction (after the
    batch before it has committed, so that duplicate references across batches are seen)."""
    prepared, bad = checked
    prepared = _drop_duplicate_references(lay, prepared, bad)
    bad_rows = len({row for row, _ in bad})
    at = now()
    old = progress.next_row

    def bookkeeping(conn: Connection, _results: list[Any]) -> None:
        if bad:
            conn.execute(
                insert(errors_t),
                [
                    {
                        "job_pk": progress.job.pk,
                        "row": row,
                        "field": e.field,
                        "code": e.code,
                        "message": e.message[:300],
                    }
                    for row, e in bad
                ],
            )
        values: dict[str, Any] = {
            "next_row": upto,
            "accepted": j.accepted + len(prepared),
            "invalid": j.invalid + bad_rows,
            "lease_until": at + timedelta(seconds=settings().job_lease_seconds),
        }
        if final:
            values.update(
                rows=progress.accepted + progress.invalid + len(prepared) + bad_rows,
                status=JobStatus.DONE.value,
                finished_at=at,
                lease_until=None,
            )
        moved = conn.execute(
            update(jobs_t)
            .where(j.pk == progress.job.pk, j.status == JobStatus.RUNNING.value, j.next_row == old)
            .values(**values)
        ).rowcount
        if not moved:
            raise JobStopped()

    results = ingest.store(prepared, at, also=bookkeeping)
    progress.next_row = upto
    progress.accepted += len(prepared)
    progress.invalid += bad_rows
    metrics.inc("smsqueue_job_rows_total", {"outcome": "accepted"}, len(prepared))
    metrics.inc("smsqueue_job_rows_total", {"outcome": "invalid"}, bad_rows)
    if final:
        metrics.inc("smsqueue_jobs_finished_total", {"status": JobStatus.DONE.value})
    return [r.pk for r in results if isinstance(r, ingest.Stored) and r.status is Status.QUEUED]


def _drop_duplicate_references(
    lay: job_rows.Layout, prepared: list[ingest.Prepared], bad: list[tuple[int, FieldError]]
) -> list[ingest.Prepared]:
    """A row whose reference an earlier row of the job (an accepted one) has is invalid."""
    refs = {p.new.reference for p in prepared if p.new.reference is not None}
    if not refs:
        return prepared
    listed = sorted(refs)
    with transaction() as conn:
        # On PostgreSQL one array parameter: an IN list of a batch's references costs SQLAlchemy more
        # to render (a bind per value) than the database takes to answer.
        among = (
            m.reference == any_(bindparam("refs", listed, type_=ARRAY(String)))
            if conn.dialect.name == "postgresql"
            else m.reference.in_(listed)
        )
        taken = set(
            conn.execute(
                select(m.reference).where(m.legal_entity_id == lay.entity_id, among, m.job_id == lay.job_id)
            ).scalars()
        )
    kept: list[ingest.Prepared] = []
    for p in prepared:
        ref = p.new.reference
        if ref is not None:
            if ref in taken:
                bad.append(
                    (
                        p.new.job_row or 0,
                        FieldError("reference", job_rows.DUPLICATE_REFERENCE, f"an earlier row has {ref!r}"),
                    )
                )
                continue
            taken.add(ref)
        kept.append(p)
    bad.sort(key=lambda item: item[0])
    return kept


def _fail(progress: _Progress, row: int, message: str) -> None:
    at = now()
    with transaction() as conn:
        conn.execute(
            insert(errors_t).values(
                job_pk=progress.job.pk,
                row=row,
                field="row",
                code=job_files.INVALID_CSV,
                message=message[:300],
            )
        )
        conn.execute(
            update(jobs_t)
            .where(j.pk == progress.job.pk, j.status == JobStatus.RUNNING.value)
            .values(status=JobStatus.FAILED.value, finished_at=at, lease_until=None, rows=None)
        )
    metrics.inc("smsqueue_jobs_finished_total", {"status": JobStatus.FAILED.value})


def cancel(job_pk: int) -> None:
    """Stop the job (a worker running it stops at its next batch) and cancel its messages still queued
    or scheduled, in batches."""
    at = now()
    with transaction() as conn:
        moved = conn.execute(
            update(jobs_t)
            .where(j.pk == job_pk, j.status != JobStatus.CANCELED.value)
            .values(
                status=JobStatus.CANCELED.value,
                finished_at=func.coalesce(j.finished_at, at),
                lease_until=None,
            )
        ).rowcount
        job_id = conn.execute(select(j.id).where(j.pk == job_pk)).scalar_one()
    if moved:
        metrics.inc("smsqueue_jobs_finished_total", {"status": JobStatus.CANCELED.value})
    while True:
        with transaction() as conn:
            pks = list(
                conn.execute(
                    select(m.pk)
                    .where(m.job_id == job_id, m.status.in_(sorted(s.value for s in CANCELABLE)))
                    .limit(5000)
                ).scalars()
            )
            if not pks:
                return
            cancel_many(conn, pks, at)


# --- reading ------------------------------------------------------------------------------------------


def by_status(job_id: uuid.UUID) -> dict[str, int]:
    with transaction() as conn:
        rows = conn.execute(select(m.status, func.count()).where(m.job_id == job_id).group_by(m.status))
        return {status: count for status, count in sorted(rows)}


def find(job_id: uuid.UUID) -> Any | None:
    with transaction() as conn:
        return conn.execute(select(jobs_t).where(j.id == job_id)).first()


def page(entity_ids: list[int] | None, after: tuple[datetime, int] | None, limit: int) -> list[Any]:
    """Jobs newest first, after (created_at, pk); one more than `limit` if there are more."""
    stmt = select(jobs_t)
    if entity_ids is not None:
        stmt = stmt.where(j.legal_entity_id.in_(entity_ids))
    if after is not None:
        stmt = stmt.where(or_(j.created_at < after[0], and_(j.created_at == after[0], j.pk < after[1])))
    with transaction() as conn:
        return list(conn.execute(stmt.order_by(j.created_at.desc(), j.pk.desc()).limit(limit + 1)))


def errors_page(job_pk: int, after: tuple[int, int] | None, limit: int) -> list[Any]:
    """Errors by row, after (row, id); one more than `limit` if there are more."""
    e = errors_t.c
    stmt = select(errors_t).where(e.job_pk == job_pk)
    if after is not None:
        stmt = stmt.where(or_(e.row > after[0], and_(e.row == after[0], e.id > after[1])))
    with transaction() as conn:
        return list(conn.execute(stmt.order_by(e.row, e.id).limit(limit + 1)))
