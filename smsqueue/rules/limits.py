"""Atomic 230-FZ counting: per (entity, recipient number), how many messages went to a provider in each
local day, week and month.

The counts live in `fz_counters` rows keyed by (entity, recipient, period kind, period start), read and
incremented in the send task's claim transaction. On PostgreSQL the claim first takes a transaction-
scoped advisory lock per (entity, number) of its batch, all of them up front and in one global order
(so two batches cannot deadlock on them), and only then reads the counts: a second claim for the same
number waits until the first commits and then reads what it counted. So concurrent workers, in any
number of processes, never send past a limit. On SQLite, `BEGIN IMMEDIATE` already serialises every
writing transaction, and no lock is needed.

What was counted for a message is remembered on the message (`messages.fz_counted_on`, the local day),
so `release` un-counts exactly that, once. `release` runs in the sender's record transaction, which must
not wait for counter rows a claim holds (the claim may be waiting for one the record already touched: a
deadlock), so it only writes an `fz_releases` row; the next claim of that number folds such rows into the
counters under its lock, and every read subtracts the rows not folded yet. A release not yet visible to
a claim (its transaction still open) only makes the count one higher for a moment: never too low.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite

from smsqueue.models import Message
from smsqueue.models.limits import FzCounter, FzRelease
from smsqueue.rules.periods import PERIOD_KINDS, PeriodKind, period_keys

counters_t = FzCounter.__table__
releases_t = FzRelease.__table__
messages_t = Message.__table__
c = counters_t.c

Recipient = tuple[int, str]  # (legal entity id, E.164 number)
CounterKey = tuple[int, str, str, date]  # (entity id, number, period kind, period start)


def keys_for_day(entity_id: int, recipient: str, day: date) -> list[CounterKey]:
    """The three counter rows a message counted on local date `day` adds to."""
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    return [
        (entity_id, recipient, "day", day),
        (entity_id, recipient, "week", week),
        (entity_id, recipient, "month", month),
    ]


def keys_at(entity_id: int, recipient: str, at: datetime, tz: ZoneInfo) -> dict[PeriodKind, CounterKey]:
    return {kind: (entity_id, recipient, kind, start) for kind, start in period_keys(at, tz).items()}


# --- locking ------------------------------------------------------------------------------------------


def lock_key(entity_id: int, recipient: str) -> int:
    """A signed 64-bit advisory lock key for one (entity, number). A collision between two pairs only
    makes them wait for each other; it never lets two claims of one pair run together."""
    digest = hashlib.blake2b(f"smsqueue.fz:{entity_id}:{recipient}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_LOCK_SQL = text(
    # The inner ORDER BY fixes the order the outer aggregate takes the locks in: every batch takes
    # them in ascending key order, so two batches sharing numbers cannot each hold what the other awaits.
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT DISTINCT k FROM unnest(CAST(:keys AS bigint[])) AS t(k) ORDER BY k) AS s"
)


def lock_recipients(conn: Connection, recipients: Iterable[Recipient]) -> None:
    """Serialise the counting of these (entity, number) pairs with every other transaction's, until this
    transaction ends. One statement for the whole batch. No-op on SQLite (its writers are serialised)."""
    keys = sorted({lock_key(entity_id, number) for entity_id, number in recipients})
    if not keys or conn.dialect.name != "postgresql":
        return
    conn.execute(_LOCK_SQL, {"keys": keys})


# --- reading and adding -------------------------------------------------------------------------------


# PostgreSQL: the keys travel as arrays, so each statement is one cached plan and one round trip
# whatever the batch size (a multi-row VALUES would be compiled anew for every batch).
_PG_READ = text(
    "SELECT c.legal_entity_id, c.recipient, c.period, c.period_start, c.count FROM fz_counters AS c "
    "JOIN unnest(CAST(:e AS integer[]), CAST(:r AS varchar[]), CAST(:p AS varchar[]), CAST(:d AS date[])) "
    "AS k(e, r, p, d) ON c.legal_entity_id = k.e AND c.recipient = k.r AND c.period = k.p "
    "AND c.period_start = k.d"
)
_PG_ADD = text(
    "INSERT INTO fz_counters AS c (legal_entity_id, recipient, period, period_start, count) "
    "SELECT * FROM unnest(CAST(:e AS integer[]), CAST(:r AS varchar[]), CAST(:p AS varchar[]), "
    "CAST(:d AS date[]), CAST(:n AS integer[])) "
    "ON CONFLICT (legal_entity_id, recipient, period, period_start) "
    "DO UPDATE SET count = c.count + EXCLUDED.count"
)
_PG_SUBTRACT = text(
    "UPDATE fz_counters AS c SET count = GREATEST(c.count - k.n, 0) "
    "FROM unnest(CAST(:e AS integer[]), CAST(:r AS varchar[]), CAST(:p AS varchar[]), CAST(:d AS date[]), "
    "CAST(:n AS integer[])) AS k(e, r, p, d, n) "
    "WHERE c.legal_entity_id = k.e AND c.recipient = k.r AND c.period = k.p AND c.period_start = k.d"
)


def _columns(keys: list[CounterKey]) -> dict[str, list]:
    return {
        "e": [k[0] for k in keys],
        "r": [k[1] for k in keys],
        "p": [k[2] for k in keys],
        "d": [k[3] for k in keys],
    }


def _key_filter(keys: list[CounterKey]) -> ColumnElement[bool]:
    return tuple_(c.legal_entity_id, c.recipient, c.period, c.period_start).in_(keys)


def read(conn: Connection, keys: Iterable[CounterKey]) -> dict[CounterKey, int]:
    """The stored counts of these counter rows (0 for a row that does not exist), in one statement that
    finds each row by its primary key. Releases not folded yet are not subtracted here."""
    wanted = sorted(set(keys))
    out = dict.fromkeys(wanted, 0)
    if not wanted:
        return out
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_PG_READ, _columns(wanted))
    else:
        rows = conn.execute(
            select(c.legal_entity_id, c.recipient, c.period, c.period_start, c.count).where(
                _key_filter(wanted)
            )
        )
    for r in rows:
        out[(r.legal_entity_id, r.recipient, r.period, r.period_start)] = r.count
    return out


def add(conn: Connection, changes: Mapping[CounterKey, int]) -> None:
    """Apply changes to counter rows, in key order (two transactions changing the same rows take their
    row locks in one order): additions in one upsert that makes missing rows; subtractions (folded
    releases, rare) in one UPDATE that never goes below 0."""
    additions = sorted((k, n) for k, n in changes.items() if n > 0)
    subtractions = sorted((k, -n) for k, n in changes.items() if n < 0)
    postgres = conn.dialect.name == "postgresql"
    if additions and postgres:
        conn.execute(_PG_ADD, {**_columns([k for k, _ in additions]), "n": [n for _, n in additions]})
    elif additions:
        stmt = sqlite.insert(counters_t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.legal_entity_id, c.recipient, c.period, c.period_start],
            set_={"count": c.count + stmt.excluded.count},
        )
        conn.execute(
            stmt,
            [
                {"legal_entity_id": k[0], "recipient": k[1], "period": k[2], "period_start": k[3], "count": n}
                for k, n in additions
            ],
        )
    if subtractions and postgres:
        conn.execute(
            _PG_SUBTRACT, {**_columns([k for k, _ in subtractions]), "n": [n for _, n in subtractions]}
        )
    elif subtractions:
        for key, n in subtractions:
            conn.execute(update(counters_t).where(_key_filter([key])).values(count=func.max(c.count - n, 0)))


def mark_counted(conn: Connection, days: Mapping[int, date]) -> None:
    """Remember on each message (by pk) the local day it was counted on: one UPDATE per distinct day."""
    by_day: dict[date, list[int]] = defaultdict(list)
    for pk, day in days.items():
        by_day[day].append(pk)
    for day, pks in sorted(by_day.items()):
        conn.execute(update(messages_t).where(messages_t.c.pk.in_(sorted(pks))).values(fz_counted_on=day))


def counts(conn: Connection, entity_id: int, recipient: str, at: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The counts of the day, week and month containing `at` in `tz`: the counters less the releases
    not folded into them yet. What the policy judges by (it folds those releases first)."""
    keys = keys_at(entity_id, recipient, at, tz)
    found = read(conn, keys.values())
    for day in _released_days(conn, entity_id, recipient):
        for key in keys_for_day(entity_id, recipient, day):
            if key in found:
                found[key] -= 1
    return {kind: max(found[keys[kind]], 0) for kind in PERIOD_KINDS}


def _released_days(conn: Connection, entity_id: int, recipient: str) -> list[date]:
    r = releases_t.c
    rows = conn.execute(select(r.counted_on).where(r.legal_entity_id == entity_id, r.recipient == recipient))
    return [row.counted_on for row in rows]


_PG_FOLD = text(
    "DELETE FROM fz_releases AS f USING unnest(CAST(:e AS integer[]), CAST(:r AS varchar[])) AS k(e, r) "
    "WHERE f.legal_entity_id = k.e AND f.recipient = k.r "
    "RETURNING f.legal_entity_id, f.recipient, f.counted_on"
)


def take_releases(conn: Connection, recipients: Iterable[Recipient]) -> list[tuple[int, str, date]]:
    """Delete and return the releases of these (entity, number) pairs: one statement. Call it only
    with their locks held (the caller then takes them off the counters)."""
    pairs = sorted(set(recipients))
    if not pairs:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_PG_FOLD, {"e": [p[0] for p in pairs], "r": [p[1] for p in pairs]})
    else:
        r = releases_t.c
        rows = conn.execute(
            delete(releases_t)
            .where(tuple_(r.legal_entity_id, r.recipient).in_(pairs))
            .returning(r.legal_entity_id, r.recipient, r.counted_on)
        )
    return [(row.legal_entity_id, row.recipient, row.counted_on) for row in rows]


class CounterCache:
    """The counts a batch decides by. `fold` takes the batch's pending releases; each counter row is
    then read from the database once, kept up to date in memory with what the batch changes, and the
    changes are written back by `flush`. Only valid while the batch's locks are held (the claim)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.values: dict[CounterKey, int] = {}
        self.changes: dict[CounterKey, int] = defaultdict(int)

    def fold(self, recipients: Iterable[Recipient]) -> None:
        """Take the releases of these pairs off their counters (in memory now; written by `flush`)."""
        for entity_id, recipient, day in take_releases(self.conn, recipients):
            for key in keys_for_day(entity_id, recipient, day):
                self.changes[key] -= 1
                if key in self.values:
                    self.values[key] -= 1

    def load(self, keys: Iterable[CounterKey]) -> None:
        missing = [k for k in set(keys) if k not in self.values]
        if missing:
            for key, stored in read(self.conn, missing).items():
                self.values[key] = max(stored + self.changes.get(key, 0), 0)

    def counts_at(self, entity_id: int, recipient: str, at: datetime, tz: ZoneInfo) -> dict[PeriodKind, int]:
        keys = keys_at(entity_id, recipient, at, tz)
        self.load(keys.values())  # a later period (asked when deferring) costs one more read
        return {kind: self.values[key] for kind, key in keys.items()}

    def count(self, entity_id: int, recipient: str, day: date) -> None:
        keys = keys_for_day(entity_id, recipient, day)
        self.load(keys)
        for key in keys:
            self.values[key] += 1
            self.changes[key] += 1

    def flush(self) -> None:
        add(self.conn, self.changes)
        self.changes.clear()


# --- un-counting --------------------------------------------------------------------------------------


def release(conn: Connection, pk: int) -> bool:
    """Un-count a message (by pk) if it is counted, in the caller's transaction: it is marked not
    counted and a release row records what to take off its counters. Idempotent: True only the one time
    it un-counts. Touches no counter row, so it never waits for a claim.

    The row lock (FOR UPDATE on PostgreSQL; the single writer on SQLite) makes two concurrent releases
    of one message see each other: the second finds it no longer counted."""
    m = messages_t.c
    row = conn.execute(
        select(m.legal_entity_id, m.recipient, m.fz_counted_on).where(m.pk == pk).with_for_update()
    ).first()
    if row is None or row.fz_counted_on is None:
        return False
    conn.execute(update(messages_t).where(m.pk == pk).values(fz_counted_on=None))
    conn.execute(
        insert(releases_t).values(
            legal_entity_id=row.legal_entity_id, recipient=row.recipient, counted_on=row.fz_counted_on
        )
    )
    return True


def purge(conn: Connection, before: date) -> int:
    """Delete the counter rows of periods that ended on or before local date `before`, and the releases
    whose periods all did: they are never read again by the policy. Keeps the tables at the size of the
    recent traffic (run it daily with a date a few days back). Returns how many rows went."""
    ended = or_(
        and_(c.period == "day", c.period_start < before),
        and_(c.period == "week", c.period_start <= before - timedelta(days=7)),
        and_(c.period == "month", c.period_start < before.replace(day=1)),
    )
    removed = conn.execute(delete(counters_t).where(ended)).rowcount or 0
    # A release's periods have all ended when its month has and its week has (a week may straddle months).
    cutoff = min(before.replace(day=1), before - timedelta(days=before.weekday()))
    removed += conn.execute(delete(releases_t).where(releases_t.c.counted_on < cutoff)).rowcount or 0
    return int(removed)
