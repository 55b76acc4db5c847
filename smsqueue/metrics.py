"""Prometheus metrics. Worker processes count in memory and add their counts to the `metric_counters`
table every few seconds, so GET /metrics (any web process, any machine) sees the whole service's counts.
Messages by status are read from the messages table when scraped."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import Connection, func, select

from smsqueue.db import is_postgres, transaction
from smsqueue.models import Message, MetricCounter
from smsqueue.statuses import Status

SEND_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

HELP = {
    "smsqueue_messages": ("gauge", "Messages by current status."),
    "smsqueue_provider_send_seconds": ("histogram", "Duration of provider send calls."),
    "smsqueue_send_latency_seconds": ("histogram", "Time from acceptance to the provider accepting it."),
    "smsqueue_provider_errors_total": ("counter", "Provider calls that failed, by provider and error code."),
    "smsqueue_messages_sent_total": ("counter", "Messages accepted by a provider."),
    "smsqueue_provider_pauses_total": ("counter", "Pauses of a provider whose account could not send."),
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
    counts = dict(conn.execute(select(m.status, func.count()).group_by(m.status)).all())
    lines += _header("smsqueue_messages")
    for status in Status:
        lines.append(f'smsqueue_messages{{status="{status.value}"}} {counts.get(status.value, 0)}')
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
