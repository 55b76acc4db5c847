"""The message lifecycle: transition (the one place a status changes), cancel, queries. New messages are
made by `message_rows` (re-exported here).

Imports no Celery and no Flask. Whoever commits a change publishes the follow-up task; the sweeps
publish what a lost publish left behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from smsqueue import metrics
from smsqueue.clock import now as clock_now
from smsqueue.message_rows import (  # noqa: F401 - a new message's rows; callers take them from here too
    COPY_FROM,
    Moved,
    NewMessage,
    event_row,
    events_t,
    insert_messages,
    insert_messages_raw,
    messages_t,
    ring_after_grace,
)
from smsqueue.statuses import CANCELABLE, FINAL, PROVIDER_FINAL, Reason, Status, sources_of


class IllegalTransition(ValueError):
    """A move the transitions table does not allow was asked for: a programming error."""


@dataclass(slots=True)
class Followups:
    """Doorbells to ring once the transaction has committed. Domain code returns them; the Celery task
    that ran it rings them.

    `now`: pks due now. `later`: (pk, seconds) of short waits for a rate-limit token, rung with a
    countdown because a token bucket with a small burst must be come back to on time; that countdown is
    only a timing aid. Nothing relies on it surviving in the broker: every queued row says when the sweep
    rings it (`ring_at`), a retry at its due time, a short wait a grace period after it."""

    now: list[int] = field(default_factory=list)
    later: list[tuple[int, float]] = field(default_factory=list)
    count: int = 0  # how many rows the step that made them took (the sweeps report it)


# The longest wait rung with a countdown (see Followups); a longer one is rung by the sweep alone.
# A doorbell that comes a little early (clock skew between processes) still finds its message due.
DUE_TOLERANCE = timedelta(milliseconds=500)
SHORT_WAIT = 10.0


def allowed_sources(to: Status, expected: Collection[Status] | None) -> list[str]:
    sources = sources_of(to)
    if expected is not None:
        wrong = set(expected) - sources
        if wrong:
            raise IllegalTransition(f"no move from {sorted(wrong)} to {to}")
        sources = frozenset(expected)
    if not sources:
        raise IllegalTransition(f"nothing may move to {to}")
    return sorted(s.value for s in sources)


def count_final(to: Status, count: int) -> None:
    """Messages that reached a final status, counted in memory for /metrics (which never counts rows:
    its cost must not grow with the history). Counted before the caller commits: a rolled-back move is
    rare enough for a rate."""
    if to in FINAL and count:
        metrics.inc("smsqueue_messages_final_total", {"status": to.value}, count)


def transition_many(
    conn: Connection,
    pks: Iterable[int],
    to: Status,
    *,
    reason: str | None = None,
    expected: Collection[Status] | None = None,
    values: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> list[Moved]:
    """Move messages to `to`, each only if its current status allows it (compare and set), and record
    one event per message moved, in the caller's transaction. Returns the ones that moved.

    `expected` narrows the statuses moved from (it must be a subset of the table's sources of `to`);
    `values` sets other columns in the same UPDATE.
    """
    pk_list = list(pks)
    if not pk_list:
        return []
    at = at or clock_now()
    c = messages_t.c
    stmt = (
        update(messages_t)
        .where(c.pk.in_(pk_list), c.status.in_(allowed_sources(to, expected)))
        .values(status=to.value, reason=reason, updated_at=at, event_seq=c.event_seq + 1, **(values or {}))
        .returning(c.pk, c.id, c.event_seq, c.callback_url)
    )
    rows = conn.execute(stmt).all()
    if not rows:
        return []
    conn.execute(
        insert(events_t),
        [event_row(r.pk, r.event_seq, to, reason, at, r.callback_url is not None, detail) for r in rows],
    )
    count_final(to, len(rows))
    return [Moved(r.pk, r.id, r.event_seq, to) for r in rows]


def transition_each(
    conn: Connection,
    rows: Sequence[tuple[int, Mapping[str, Any], Mapping[str, Any] | None]],
    to: Status,
    *,
    reason: str | None = None,
    expected: Collection[Status] | None = None,
    values: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> list[Moved]:
    """`transition_many` where some columns differ per message: `rows` are (pk, its own column values,
    its event's detail), every row naming the same columns. On PostgreSQL one UPDATE for them all, the
    per-row values joined in from arrays (`unnest`); elsewhere one `transition` per row."""
    if not rows:
        return []
    at = at or clock_now()
    if conn.dialect.name != "postgresql" or len(rows) == 1:
        out = []
        for pk, own, detail in rows:
            merged = {**(values or {}), **own}
            moved = transition(
                conn, pk, to, reason=reason, expected=expected, values=merged, detail=detail, at=at
            )
            if moved is not None:
                out.append(moved)
        return out
    c = messages_t.c
    names = sorted(rows[0][1])
    joined = _joined([(pk, own) for pk, own, _ in rows], names)
    stmt = (
        update(messages_t)
        .where(c.pk == joined.c.pk, c.status.in_(allowed_sources(to, expected)))
        .values(
            status=to.value, reason=reason, updated_at=at, event_seq=c.event_seq + 1, **(values or {}),
            **{n: joined.c[n] for n in names},
        )
        .returning(c.pk, c.id, c.event_seq, c.callback_url)
    )  # fmt: skip
    moved = conn.execute(stmt).all()
    if not moved:
        return []
    details = {pk: detail for pk, _, detail in rows}
    conn.execute(
        insert(events_t),
        [
            event_row(r.pk, r.event_seq, to, reason, at, r.callback_url is not None, details[r.pk])
            for r in moved
        ],
    )
    count_final(to, len(moved))
    return [Moved(r.pk, r.id, r.event_seq, to) for r in moved]


def _joined(rows: Sequence[tuple[int, Mapping[str, Any]]], names: Sequence[str]) -> Any:
    """Per-row values as a derived table `v(pk, *names)`, joined in from arrays (PostgreSQL `unnest`):
    one statement and one cached plan whatever the number of rows."""
    c = messages_t.c
    arrays = [bindparam("pk_list", [pk for pk, _ in rows], type_=ARRAY(c.pk.type))]
    arrays += [bindparam(f"{n}_list", [own[n] for _, own in rows], type_=ARRAY(c[n].type)) for n in names]
    return func.unnest(*arrays).table_valued("pk", *names).render_derived(name="v")


def set_each(conn: Connection, rows: Sequence[tuple[int, Mapping[str, Any]]], status: Status) -> None:
    """Set columns that differ per message, on those still in `status`, without a change of status (no
    event): `rows` are (pk, its column values), every row naming the same columns. One UPDATE on
    PostgreSQL; one per row elsewhere."""
    if not rows:
        return
    c = messages_t.c
    if conn.dialect.name != "postgresql" or len(rows) == 1:
        for pk, own in rows:
            conn.execute(update(messages_t).where(c.pk == pk, c.status == status.value).values(**own))
        return
    names = sorted(rows[0][1])
    joined = _joined(rows, names)
    conn.execute(
        update(messages_t)
        .where(c.pk == joined.c.pk, c.status == status.value)
        .values(**{n: joined.c[n] for n in names})
    )


def transition(
    conn: Connection,
    pk: int,
    to: Status,
    *,
    reason: str | None = None,
    expected: Collection[Status] | None = None,
    values: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Moved | None:
    """`transition_many` for one message: its Moved, or None when its status did not allow the move."""
    moved = transition_many(
        conn, [pk], to, reason=reason, expected=expected, values=values, detail=detail, at=at
    )
    return moved[0] if moved else None


# --- a provider's status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """A status a provider gave for one of our messages (in an answer, a poll or a delivery report)."""

    pk: int
    status: Status | None
    reason: str | None = None
    provider_status: str | None = None  # the provider's own code, kept in the event


def apply_statuses(conn: Connection, items: Sequence[ProviderStatus], at: datetime, source: str) -> set[int]:
    """Record providers' statuses: the one rule for answers, polls and reports. Only a status that ends
    a message moves it, and only out of `sent` or `sending` (never out of a final status); anything else
    (in progress) changes nothing. A few statements for the whole batch. Returns the pks that moved."""
    groups: dict[tuple[Status, str | None], list[tuple[int, Mapping[str, Any], Mapping[str, Any]]]] = {}
    for item in items:
        if item.status not in PROVIDER_FINAL:
            continue
        detail = {
            "source": source,
            **({"provider_status": item.provider_status} if item.provider_status else {}),
        }
        groups.setdefault((item.status, item.reason), []).append((item.pk, {}, detail))
    moved: set[int] = set()
    for (status, reason), rows in groups.items():
        done = transition_each(
            conn,
            rows,
            status,
            reason=reason,
            expected={Status.SENT, Status.SENDING},
            at=at,
            values={"next_status_check_at": None, "next_attempt_at": None},
        )
        moved.update(mv.pk for mv in done)
    return moved


def apply_status(conn: Connection, item: ProviderStatus, at: datetime, source: str) -> bool:
    """`apply_statuses` for one message: True when it moved."""
    return bool(apply_statuses(conn, [item], at, source))


# --- cancel -------------------------------------------------------------------------------------------


class NotCancelable(Exception):
    def __init__(self, status: Status) -> None:
        super().__init__(f"a {status} message cannot be canceled")
        self.status = status


def cancel(conn: Connection, pk: int, at: datetime | None = None) -> Moved | None:
    """Cancel a queued or scheduled message. None if it was canceled already; NotCancelable otherwise.

    The compare-and-set races safely with a worker's claim: only one of them moves the row."""
    moved = cancel_many(conn, [pk], at)
    if moved:
        return moved[0]
    status = conn.execute(select(messages_t.c.status).where(messages_t.c.pk == pk)).scalar_one()
    if status == Status.CANCELED:
        return None
    raise NotCancelable(Status(status))


def cancel_many(conn: Connection, pks: Sequence[int], at: datetime | None = None) -> list[Moved]:
    """Cancel those of these messages that are still queued or scheduled (a job's cancel)."""
    return transition_many(
        conn,
        pks,
        Status.CANCELED,
        reason=Reason.CANCELED_BY_CLIENT,
        expected=CANCELABLE,
        at=at,
        values={"next_attempt_at": None},
    )


# --- queries ------------------------------------------------------------------------------------------


def events_of(
    conn: Connection, pks: Sequence[int], *, with_detail: bool = False
) -> dict[int, list[dict[str, Any]]]:
    """Events of messages, in order, keyed by message pk; `with_detail` adds each event's `detail` (the
    provider's answers, for the operator console)."""
    out: dict[int, list[dict[str, Any]]] = {pk: [] for pk in pks}
    if not pks:
        return out
    e = events_t.c
    columns = [e.message_pk, e.seq, e.status, e.reason, e.at, *([e.detail] if with_detail else [])]
    rows = conn.execute(select(*columns).where(e.message_pk.in_(list(pks))).order_by(e.message_pk, e.seq))
    for r in rows:
        event = {"seq": r.seq, "status": r.status, "reason": r.reason, "at": r.at}
        if with_detail:
            event["detail"] = r.detail
        out[r.message_pk].append(event)
    return out
