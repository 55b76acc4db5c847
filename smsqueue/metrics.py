"""Prometheus metrics. Every process (web and worker) counts in memory and adds its counts to the
`metric_counters` table every few seconds, so GET /metrics (any web process, any machine) sees the whole
service's counts. (prometheus_client's multiprocess mode shares files on one host only; these processes
run on several.)

A scrape costs the same with ten million messages as with ten: it reads the counter rows, and counts
only the unfinished messages (the backlog), each status through its own partial index and capped at
BACKLOG_CAP rows; final statuses are counters (`smsqueue_messages_final_total`), never a COUNT(*)."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import ColumnElement, Connection, and_, func, select

from smsqueue.clock import now
from smsqueue.db import is_postgres, transaction
from smsqueue.models import Job, Message, MetricCounter
from smsqueue.statuses import JOB_UNFINISHED, Status

SEND_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LAG_SECONDS_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 6 * 3600.0, 24 * 3600.0)
BACKLOG_CAP = 100_000  # a backlog count stops here ("at least"), so a scrape stays cheap in any flood

HELP = {
    "smsqueue_messages": ("gauge", f"Unfinished messages by status (counted up to {BACKLOG_CAP})."),
    "smsqueue_sweep_backlog": ("gauge", f"Messages due for a sweep, by sweep (counted up to {BACKLOG_CAP})."),
    "smsqueue_messages_final_total": ("counter", "Messages that reached a final status."),
    "smsqueue_messages_purged_total": ("counter", "Messages deleted by the retention purge."),
    "smsqueue_webhook_attempts_total": ("counter", "Status webhook POSTs, by outcome."),
    "smsqueue_webhook_failures_total": (
        "counter",
        "Status webhook POSTs that failed, by the event's state after.",
    ),
    "smsqueue_webhook_lag_seconds": ("histogram", "From a status change to its webhook's 2xx."),
    "smsqueue_delivery_reports_total": ("counter", "Provider delivery reports, by kind and outcome."),
    "smsqueue_rate_limited_total": ("counter", "API requests refused 429 by their key's rate limit."),
    "smsqueue_rate_limiter_errors_total": ("counter", "API requests let through: Redis unavailable."),
    "smsqueue_provider_send_seconds": ("histogram", "Duration of provider send calls."),
    "smsqueue_send_latency_seconds": ("histogram", "Time from acceptance to the provider accepting it."),
    "smsqueue_provider_errors_total": ("counter", "Provider calls that failed, by provider and error code."),
    "smsqueue_messages_sent_total": ("counter", "Messages accepted by a provider."),
    "smsqueue_provider_pauses_total": ("counter", "Pauses of a provider whose account could not send."),
    "smsqueue_jobs": ("gauge", "CSV jobs not finished, by status."),
    "smsqueue_job_rows_total": ("counter", "Rows of CSV jobs stored, by outcome (accepted, invalid)."),
    "smsqueue_jobs_finished_total": ("counter", "CSV jobs that ended, by status (done, failed, canceled)."),
}

log = logging.getLogger(__name__)
_lock = threading.Lock()
_pending: dict[tuple[str, str], float] = defaultdict(float)
_last_flush = time.monotonic()
FLUSH_EVERY = 5.0


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_flusher_pid: int | None = None


def _ensure_flusher() -> None:
    """A daemon thread per process that adds what was counted to the table every few seconds, so the
    last counts of a worker that goes quiet are not held back until its next task."""
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    _flusher_pid = os.getpid()

    def run() -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            try:
                flush()
            except Exception:  # the database may be away for a while; the counts wait in memory
                log.warning("could not flush metrics; will try again", exc_info=True)

    threading.Thread(target=run, name="metrics-flush", daemon=True).start()


def inc(name: str, labels: Mapping[str, str], value: float = 1.0) -> None:
    _ensure_flusher()
    with _lock:
        _pending[(name, _labels(labels))] += value


def observe(name: str, labels: Mapping[str, str], value: float, buckets: tuple[float, ...]) -> None:
    _ensure_flusher()
    with _lock:
        for le in (*buckets, math.inf):
            # Every bucket is written, the empty ones too: a histogram lists all its buckets.
            bucket_labels = {**labels, "le": "+Inf" if le == math.inf else repr(le)}
            _pending[(f"{name}_bucket", _labels(bucket_labels))] += 1 if value <= le else 0
        key = _labels(labels)
        _pending[(f"{name}_sum", key)] += value
        _pending[(f"{name}_count", key)] += 1


def flush(force: bool = False) -> None:
    """Add what this process counted to the table (at most every few seconds unless forced)."""
    global _last_flush
    with _lock:
        if not _pending or (not force and time.monotonic() - _last_flush < FLUSH_EVERY):
            return
        items = list(_pending.items())
        _pending.clear()
        _last_flush = time.monotonic()
    try:
        with transaction() as conn:
            _upsert(conn, items)
    except Exception:
        with _lock:  # keep the counts for the next flush rather than lose them
            for key, value in items:
                _pending[key] += value
        raise


def _upsert(conn: Connection, items: list[tuple[tuple[str, str], float]]) -> None:
    table = MetricCounter.__table__
    if is_postgres():
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.name, table.c.labels], set_={"value": table.c.value + stmt.excluded.value}
    )
    # Sorted, so that concurrent flushes lock rows in one order and cannot deadlock.
    rows = [{"name": n, "labels": lab, "value": v} for (n, lab), v in sorted(items)]
    conn.execute(stmt, rows)


def render(conn: Connection) -> str:
    lines: list[str] = []
    m = Message.__table__.c
    lines += _header("smsqueue_messages")
    for status in UNFINISHED:
        lines.append(
            f'smsqueue_messages{{status="{status.value}"}} {_capped(conn, m.status == status.value)}'
        )
    lines += _header("smsqueue_sweep_backlog")
    at = now()
    due = {
        "dispatch_scheduled": and_(m.status == Status.SCHEDULED.value, m.next_attempt_at <= at),
        "republish_lost": and_(m.status == Status.QUEUED.value, m.ring_at <= at),
        "reconcile_sending": and_(m.status == Status.SENDING.value, m.next_attempt_at <= at),
        "poll_statuses": and_(m.status == Status.SENT.value, m.next_status_check_at <= at),
    }
    for sweep, condition in due.items():
        lines.append(f'smsqueue_sweep_backlog{{sweep="{sweep}"}} {_capped(conn, condition)}')
    lines += _header("smsqueue_jobs")
    jc = Job.__table__.c
    for status in sorted(JOB_UNFINISHED, key=lambda s: s.value):
        lines.append(
            f'smsqueue_jobs{{status="{status.value}"}} {_capped(conn, jc.status == status.value, Job)}'
        )
    t = MetricCounter.__table__.c
    rows = sorted(conn.execute(select(t.name, t.labels, t.value)).all(), key=_sort_key)
    seen: set[str] = set()
    for name, labels, value in rows:
        family = _family(name)
        if family not in seen:
            seen.add(family)
            lines += _header(family)
        lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


# The statuses of a message still in flight: each has a partial index (models.core.Message).
UNFINISHED = (Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.SENT)


def _capped(conn: Connection, condition: ColumnElement[bool], table: type = Message) -> int:
    """How many rows match, counted up to BACKLOG_CAP (an index range read, never the history)."""
    inner = select(table.__table__.c.pk).where(condition).limit(BACKLOG_CAP).subquery()
    return int(conn.scalar(select(func.count()).select_from(inner)) or 0)


_LE = re.compile(r'(?:^|,)le="([^"]*)"')


def _sort_key(row: tuple[str, str, float]) -> tuple[str, str, float]:
    """Families together, and a histogram's buckets in increasing `le`, as the text format wants."""
    name, labels, _ = row
    match = _LE.search(labels)
    if match is None:
        return (_family(name), name + labels, 0.0)
    le = math.inf if match.group(1) == "+Inf" else float(match.group(1))
    return (_family(name), name + _LE.sub("", labels), le)


def _family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HELP:
            return name[: -len(suffix)]
    return name


def _header(family: str) -> list[str]:
    kind, text = HELP.get(family, ("untyped", family))
    return [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
