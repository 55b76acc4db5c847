"""CSV jobs: created with their file spooled, run in batches by a worker, resumed, canceled, read.

Running is a loop of transactions, each taking the next `job_batch_rows` records of the file: their
messages (through `ingest.store`, the batch API's path), their errors and the job's progress are
committed together, so a job whose worker dies resumes exactly after its last committed batch; the
progress is a compare-and-set on `next_row` and each row's message is unique per (job, row), so no row
is ever stored twice, even by two workers. Several batches are stored at once (`job_writers`), each
recording the progress only after the one before it, so they commit in row order. No Celery here:
`run` yields the pks to ring.
"""

from __future__ import annotations

import csv
import gc
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from smsqueue import ingest, job_files, job_refs, job_rows, metrics
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
# While a job runs, the cyclic collector looks at the young objects only once this many more have been
# made than freed (Python's default is 700). A job makes a few objects per row, all freed with their
# batch by reference counting, and at the default the collector ran ~9,000 times over a million rows,
# a third of the job worker's CPU (measured by gc.callbacks: 14.8 of 36 s).
JOB_GC_THRESHOLD = 50_000


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


class _Batch:
    """One batch's place in the job: the rows before it and up to its end, what it stores, the job's
    counts after it, and its turn to record the progress (after the batch before it has recorded its
    own). A job's runner starts from `start` (the job as claimed, its turn already taken)."""

    def __init__(
        self, before: _Batch | None, old: int, upto: int, accepted: int, invalid: int, stored: int = 0,
        bad_rows: int = 0, final: bool = False,
    ) -> None:  # fmt: skip
        self.old = old
        self.upto = upto
        self.accepted = accepted  # the job's counts once this batch is stored
        self.invalid = invalid
        self.stored = stored  # this batch's own messages and invalid rows
        self.bad_rows = bad_rows
        self.final = final
        self.after = before.recorded if before is not None else None
        self.recorded = threading.Event()

    @classmethod
    def start(cls, job: Any) -> _Batch:
        first = cls(None, job.next_row, job.next_row, job.accepted, job.invalid)
        first.recorded.set()
        return first

    def next(self, upto: int, stored: int, bad_rows: int, final: bool) -> _Batch:
        return _Batch(
            self, self.upto, upto, self.accepted + stored, self.invalid + bad_rows, stored, bad_rows, final
        )


@contextmanager
def _rare_collections() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.set_threshold(JOB_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def run(job_pk: int) -> Iterator[list[int]]:
    """Run the job from where it stopped; after each committed batch, the pks of its queued messages."""
    with _rare_collections():
        yield from _run(job_pk)


def _run(job_pk: int) -> Iterator[list[int]]:
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
    refs = job_refs.References(job.legal_entity_id, job.id)
    if job.next_row:
        refs.load()
    size = max(1, settings().job_batch_rows)
    writers = max(1, settings().job_writers)
    last = _Batch.start(job)
    inflight: deque[Future[list[int]]] = deque()

    def hand_on(rows: list[tuple[int, list[str]]], upto: int, final: bool) -> None:
        nonlocal last
        prepared, bad = _check_rows(lay, rows)
        prepared = _drop_duplicate_references(refs, prepared, bad)
        last = last.next(upto, len(prepared), len({row for row, _ in bad}), final)
        inflight.append(pool.submit(_store, job.pk, prepared, bad, last))

    # Rows are read and checked here while earlier batches are stored by the writer threads, each on
    # its own connection (the database's work runs on as many cores as there are writers, beside
    # ours); each batch records the job's progress only after the batch before it has, so batches
    # commit in row order.
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="job-writer") as pool:
        try:
            rows: list[tuple[int, list[str]]] = []
            consumed = 0
            for values in job_files.records(job_pk, job.delimiter):
                consumed += 1
                if consumed <= job.next_row:
                    continue  # committed before a restart
                rows.append((consumed + 1, values))  # row numbers count the header as row 1
                if len(rows) >= size:
                    while len(inflight) >= writers:
                        yield inflight.popleft().result()
                        refs.committed()
                    hand_on(rows, consumed, False)
                    rows = []
            hand_on(rows, consumed, True)
            while inflight:
                yield inflight.popleft().result()
                refs.committed()
        except csv.Error as exc:
            # Only a cell over the size limit gets here (the reader is lenient otherwise): the rest of
            # the file cannot be read reliably, so the job fails with that row listed.
            while inflight:
                yield inflight.popleft().result()
            _fail(job.pk, consumed + 2, str(exc))
        except (JobStopped, IntegrityError):
            log.info("job %s stopped (canceled, or taken on elsewhere)", job.id)
        finally:
            for future in inflight:
                future.cancel()  # not started: nothing to undo; running ones end on their own


_Checked = tuple[list[ingest.Prepared], list[tuple[int, FieldError]]]


def _check_rows(lay: job_rows.Layout, rows: list[tuple[int, list[str]]]) -> _Checked:
    prepared: list[ingest.Prepared] = []
    bad: list[tuple[int, FieldError]] = []
    to = lay.to
    for row, values in rows:
        if not (len(values) > to and values[to]) and not "".join(values).strip():
            continue  # a blank line: not a row
        result = job_rows.prepare(values, row, lay)
        if isinstance(result, list):
            bad.extend((row, e) for e in result)
        else:
            prepared.append(result)
    return prepared, bad


def _store(
    job_pk: int, prepared: list[ingest.Prepared], bad: list[tuple[int, FieldError]], batch: _Batch
) -> list[int]:
    """Store a checked batch with its errors and the job's progress, in one transaction."""
    at = now()

    def bookkeeping(conn: Connection, _results: list[Any]) -> None:
        if bad:
            conn.execute(
                insert(errors_t),
                [
                    {
                        "job_pk": job_pk,
                        "row": row,
                        "field": e.field,
                        "code": e.code,
                        "message": e.message[:300],
                    }
                    for row, e in bad
                ],
            )
        values: dict[str, Any] = {
            "next_row": batch.upto,
            "accepted": batch.accepted,
            "invalid": batch.invalid,
            "lease_until": at + timedelta(seconds=settings().job_lease_seconds),
        }
        if batch.final:
            values.update(
                rows=batch.accepted + batch.invalid,
                status=JobStatus.DONE.value,
                finished_at=at,
                lease_until=None,
            )
        if batch.after is not None:
            if not batch.after.wait(settings().job_lease_seconds):
                raise JobStopped()  # the batch before is stuck: the job's hold runs out anyway
            # Wait for the batch before to end (it holds the job's row). Then the compare-and-set below,
            # a statement of its own, sees what that batch committed: an UPDATE alone would judge its
            # condition on the row as it was before that commit, and find nothing to move. (NO KEY: the
            # lock a later batch's job_errors rows take on their job, by their foreign key, must not
            # stand in its way.)
            conn.execute(select(j.pk).where(j.pk == job_pk).with_for_update(key_share=True))
        # The compare-and-set finds nothing to move if the batch before did not commit, or if the job
        # was canceled or taken on elsewhere.
        moved = conn.execute(
            update(jobs_t)
            .where(j.pk == job_pk, j.status == JobStatus.RUNNING.value, j.next_row == batch.old)
            .values(**values)
        ).rowcount
        batch.recorded.set()
        if not moved:
            raise JobStopped()

    try:
        results = ingest.store(prepared, at, also=bookkeeping)
    finally:
        batch.recorded.set()  # the next batch's turn comes, whatever became of this one
    metrics.inc("smsqueue_job_rows_total", {"outcome": "accepted"}, batch.stored)
    metrics.inc("smsqueue_job_rows_total", {"outcome": "invalid"}, batch.bad_rows)
    if batch.final:
        metrics.inc("smsqueue_jobs_finished_total", {"status": JobStatus.DONE.value})
    return [r.pk for r in results if isinstance(r, ingest.Stored) and r.status is Status.QUEUED]


def _drop_duplicate_references(
    refs: job_refs.References, prepared: list[ingest.Prepared], bad: list[tuple[int, FieldError]]
) -> list[ingest.Prepared]:
    """A row whose reference an earlier row of the job (an accepted one) has is invalid."""
    wanted = {p.new.reference for p in prepared if p.new.reference is not None}
    if not wanted:
        refs.handed_on(set())
        return prepared
    taken = refs.taken(wanted)
    kept: list[ingest.Prepared] = []
    accepted: set[str] = set()
    for p in prepared:
        ref = p.new.reference
        if ref is not None:
            if ref in taken or ref in accepted:
                bad.append(
                    (
                        p.new.job_row or 0,
                        FieldError("reference", job_rows.DUPLICATE_REFERENCE, f"an earlier row has {ref!r}"),
                    )
                )
                continue
            accepted.add(ref)
        kept.append(p)
    bad.sort(key=lambda item: item[0])
    refs.handed_on(accepted)
    return kept


def _fail(job_pk: int, row: int, message: str) -> None:
    at = now()
    with transaction() as conn:
        conn.execute(
            insert(errors_t).values(
                job_pk=job_pk,
                row=row,
                field="row",
                code=job_files.INVALID_CSV,
                message=message[:300],
            )
        )
        conn.execute(
            update(jobs_t)
            .where(j.pk == job_pk, j.status == JobStatus.RUNNING.value)
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
