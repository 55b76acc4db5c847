"""What the console's pages read, always within the signed-in key's entities (the filter is in each query,
not only in what a page shows). The message listing itself is `message_search`, shared with the API."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select, text
from sqlalchemy.exc import OperationalError

from smsqueue import message_search
from smsqueue.auth import Principal
from smsqueue.db import transaction
from smsqueue.message_search import CREATED, MessageFilter, Page
from smsqueue.messages import events_of, messages_t
from smsqueue.models import LegalEntity, MetricCounter, Provider
from smsqueue.webhooks.attempts import attempts_of

m = messages_t.c
STATEMENT_TIMEOUT_MS = 3000  # a console query that would run longer is stopped: the page says so
PAGE_SIZE = 50
DAY_HOURS = 24


class TooBroad(Exception):
    """The query ran out of its time (PostgreSQL's statement_timeout): the filters are too wide."""


@contextmanager
def bounded() -> Iterator[Connection]:
    """A read transaction whose statements may run STATEMENT_TIMEOUT_MS at most (on PostgreSQL), so one
    wide search cannot hold a web worker or the database for long."""
    try:
        with transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            yield conn
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == "57014":  # query_canceled
            raise TooBroad from None
        raise


# --- names --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Names:
    """Codes and names of the entities the key may see, and of every provider (small tables)."""

    entities: dict[int, tuple[str, str]]  # id -> (code, name)
    providers: dict[int, str]  # id -> code

    def entity_code(self, entity_id: int) -> str:
        return self.entities.get(entity_id, ("?", ""))[0]

    def provider_code(self, provider_id: int | None) -> str | None:
        return None if provider_id is None else self.providers.get(provider_id, "?")

    def entity_id(self, code: str) -> int | None:
        return next((i for i, (c, _) in self.entities.items() if c == code), None)


def visible_entities(who: Principal) -> Collection[int] | None:
    """The entity ids a query must keep to; None for an admin (every entity)."""
    return None if who.is_admin else who.entity_ids


def names(conn: Connection, who: Principal) -> Names:
    e, p = LegalEntity.__table__.c, Provider.__table__.c
    query = select(e.id, e.code, e.name).order_by(e.code)
    scope = visible_entities(who)
    if scope is not None:
        query = query.where(e.id.in_(sorted(scope)))
    entities = {r.id: (r.code, r.name) for r in conn.execute(query)}
    providers = {r.id: r.code for r in conn.execute(select(p.id, p.code))}
    return Names(entities, providers)


def entity_codes(conn: Connection, ids: Collection[int]) -> list[str]:
    e = LegalEntity.__table__.c
    return list(conn.execute(select(e.code).where(e.id.in_(sorted(ids))).order_by(e.code)).scalars())


# --- messages -----------------------------------------------------------------------------------------


SCAN_ROWS = 20000  # messages looked through per page when only statuses narrow the search


@dataclass(frozen=True, slots=True)
class Found:
    page: Page
    scanned: int | None = None  # set when the page looked through a bounded stretch only


def search(conn: Connection, f: MessageFilter, cursor: str | None, limit: int = PAGE_SIZE) -> Found:
    """A page of the API's newest-first listing. A number or a reference leads through its index, and
    so does the time range; statuses do not (no index begins with the status: every status change
    would pay for one), so a rare status would mean reading every message. With statuses and neither a
    number nor a reference, a page therefore looks through the newest SCAN_ROWS messages of the range
    after the cursor at most, and its cursor goes on from where it stopped (fewer rows than a page,
    even none, with a next page, means: nothing more in that stretch)."""
    if not f.statuses or any(v is not None for v in (f.to, f.reference, f.debtor, f.job_id)):
        return Found(message_search.newest_first(conn, message_search.conditions(f), cursor, limit))
    where = message_search.conditions(replace(f, statuses=()))
    if cursor is not None:
        where.append(message_search.older_than(cursor))
    newest = (m.created_at.desc(), m.pk.desc())
    stretch = select(messages_t).where(*where).order_by(*newest).limit(SCAN_ROWS).subquery()
    # The stretch is read lazily: the outer LIMIT stops the index scan once a page is found.
    rows = conn.execute(
        select(stretch)
        .where(stretch.c.status.in_(list(f.statuses)))
        .order_by(stretch.c.created_at.desc(), stretch.c.pk.desc())
        .limit(limit + 1)
    ).all()
    end = None
    if len(rows) <= limit:  # the page did not fill: did the stretch end before the range did?
        end = conn.execute(
            select(m.created_at, m.pk).where(*where).order_by(*newest).offset(SCAN_ROWS - 1).limit(1)
        ).first()
    # A full page goes on after its last row; a short one from the end of the stretch, or nothing is left.
    last = rows[limit - 1] if len(rows) > limit else end
    next_cursor = message_search.encode_cursor(CREATED, last.created_at, last.pk) if last else None
    return Found(Page(rows[:limit], next_cursor), scanned=SCAN_ROWS if end is not None else None)


def message_by_id(conn: Connection, ident: uuid.UUID, who: Principal) -> Any | None:
    """A message by its id, or None when there is none the key may see (another entity's is not shown)."""
    row = conn.execute(select(messages_t).where(m.id == ident)).first()
    if row is None or not who.may_use(row.legal_entity_id):
        return None
    return row


def events(conn: Connection, pk: int) -> list[dict[str, Any]]:
    return events_of(conn, [pk], with_detail=True)[pk]


def webhook_attempts(conn: Connection, pk: int) -> list[dict[str, Any]]:
    # The list the admin API gives (GET /api/v1/messages/{id}/webhooks).
    return attempts_of(conn, pk)


# --- dashboard ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Message counts of one window: by status, by provider and status, and the unhappy endings by
    provider and reason."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_provider: dict[int | None, dict[str, int]] = field(default_factory=dict)
    failures: dict[tuple[int | None, str, str | None], int] = field(default_factory=dict)

    def add(self, status: str, provider_id: int | None, reason: str | None, count: int) -> None:
        self.total += count
        self.by_status[status] = self.by_status.get(status, 0) + count
        row = self.by_provider.setdefault(provider_id, {})
        row[status] = row.get(status, 0) + count
        if status in FAILURE_STATUSES:
            key = (provider_id, status, reason)
            self.failures[key] = self.failures.get(key, 0) + count


FAILURE_STATUSES = frozenset({"failed", "undelivered", "rejected", "expired"})


@dataclass
class Dashboard:
    start: datetime  # of the day window; hour i covers start + i h .. start + (i + 1) h
    hour: Tally
    day: Tally
    hourly: list[dict[str, int]]  # DAY_HOURS items: status -> count


def dashboard(conn: Connection, who: Principal, at: datetime) -> Dashboard:
    """The last hour and day of messages (by creation time), in one grouped query over the created_at
    indexes: each row falls in one of DAY_HOURS hour-long buckets counted back from `at`."""
    start = at - timedelta(hours=DAY_HOURS)
    bucket = case(
        *[(m.created_at > start + timedelta(hours=i), i) for i in range(DAY_HOURS - 1, 0, -1)], else_=0
    ).label("bucket")
    where = [m.created_at > start, m.created_at <= at]
    scope = visible_entities(who)
    if scope is not None:
        where.append(m.legal_entity_id.in_(sorted(scope)))
    query = (
        select(bucket, m.status, m.provider_id, m.reason, func.count().label("n"))
        .where(*where)
        .group_by(bucket, m.status, m.provider_id, m.reason)
    )
    hour, day = Tally(), Tally()
    hourly: list[dict[str, int]] = [{} for _ in range(DAY_HOURS)]
    for r in conn.execute(query):
        day.add(r.status, r.provider_id, r.reason, r.n)
        if r.bucket == DAY_HOURS - 1:
            hour.add(r.status, r.provider_id, r.reason, r.n)
        hourly[r.bucket][r.status] = hourly[r.bucket].get(r.status, 0) + r.n
    return Dashboard(start, hour, day, hourly)


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def provider_error_totals(conn: Connection) -> list[tuple[str, str, int]]:
    """(provider, error code, calls) from the service-wide counters that /metrics shows."""
    t = MetricCounter.__table__.c
    rows = conn.execute(select(t.labels, t.value).where(t.name == "smsqueue_provider_errors_total"))
    out = []
    for labels, value in rows:
        parsed = dict(_LABEL.findall(labels))
        out.append((parsed.get("provider", "?"), parsed.get("code", "?"), int(value)))
    return sorted(out, key=lambda item: (-item[2], item[0], item[1]))
