"""Atomic 230-FZ counting: per (limit scope, subject) (see `rules.subjects`: an entity or a limit group;
a number or a debtor), how many messages went to a provider in each local day, week and month
(`fz_counters`) and in each UTC minute (`fz_minutes`, for the rolling windows of `rules.rolling`).

The counts are read and incremented in the send task's claim transaction. On PostgreSQL the claim first
takes a transaction-scoped advisory lock per (scope, subject) of its batch (a message with a debtor takes
two: its debtor's and its number's), all of them up front and in one global order, ascending key (so two
batches cannot deadlock on them), and only then reads the counts: a second claim for the same person or
number waits until the first commits and then reads what it counted. So concurrent workers, in any
number of processes, never send past a limit. On SQLite, `BEGIN IMMEDIATE` already serialises every
writing transaction, and no lock is needed.

What was counted for a message is remembered on the message (`messages.fz_counted_on`, the local day,
and `fz_counted_at`, the minute), so `release` un-counts exactly that, once. `release` runs in the
sender's record transaction, which must not wait for counter rows a claim holds (the claim may be waiting
for one the record already touched: a deadlock), so it only writes `fz_releases` rows; the next claim of
that subject folds them into the counters under its lock, and every read subtracts the rows not folded
yet. A release not yet visible to a claim (its transaction still open) only makes the count one higher
for a moment: never too low.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
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

from smsqueue.models import LegalEntity, Message
from smsqueue.models.limits import FzCounter, FzMinute, FzRelease
from smsqueue.rules import rolling
from smsqueue.rules.periods import PERIOD_KINDS, PeriodKind, period_keys
from smsqueue.rules.subjects import Subject, scope_of, subjects_of

counters_t = FzCounter.__table__
minutes_t = FzMinute.__table__
releases_t = FzRelease.__table__
messages_t = Message.__table__
c = counters_t.c
mc = minutes_t.c

CounterKey = tuple[str, str, str, date]  # (scope, subject, period kind, period start)
MinuteKey = tuple[str, str, datetime]  # (scope, subject, UTC minute)


def keys_for_day(scope: str, subject: str, day: date) -> list[CounterKey]:
    """The three counter rows a message counted on local date `day` adds to."""
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    return [(scope, subject, "day", day), (scope, subject, "week", week), (scope, subject, "month", month)]


def keys_at(scope: str, subject: str, at: datetime, tz: ZoneInfo) -> dict[PeriodKind, CounterKey]:
    return {kind: (scope, subject, kind, start) for kind, start in period_keys(at, tz).items()}


# --- locking ------------------------------------------------------------------------------------------


def lock_key(scope: str, subject: str) -> int:
    """A signed 64-bit advisory lock key for one (scope, subject). A collision between two pairs only
    makes them wait for each other; it never lets two claims of one pair run together."""
    digest = hashlib.blake2b(f"smsqueue.fz:{scope}:{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_LOCK_SQL = text(
    # The inner ORDER BY fixes the order the outer aggregate takes the locks in: every batch takes
    # them in ascending key order, so two batches sharing subjects cannot each hold what the other awaits.
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT DISTINCT k FROM unnest(CAST(:keys AS bigint[])) AS t(k) ORDER BY k) AS s"
)


def lock_subjects(conn: Connection, pairs: Iterable[Subject]) -> None:
    """Serialise the counting of these (scope, subject) pairs with every other transaction's, until this
    transaction ends. One statement for the whole batch. No-op on SQLite (its writers are serialised)."""
    keys = sorted({lock_key(scope, subject) for scope, subject in pairs})
    if not keys or conn.dialect.name != "postgresql":
        return
    conn.execute(_LOCK_SQL, {"keys": keys})


# --- reading and adding -------------------------------------------------------------------------------


# PostgreSQL: the keys travel as arrays, so each statement is one cached plan and one round trip
# whatever the batch size (a multi-row VALUES would be compiled anew for every batch).
_PG_READ = text(
    "SELECT c.scope, c.subject, c.period, c.period_start, c.count FROM fz_counters AS c "
    "JOIN unnest(CAST(:s AS varchar[]), CAST(:u AS varchar[]), CAST(:p AS varchar[]), CAST(:d AS date[])) "
    "AS k(s, u, p, d) ON c.scope = k.s AND c.subject = k.u AND c.period = k.p AND c.period_start = k.d"
)
_PG_ADD = text(
    "INSERT INTO fz_counters AS c (scope, subject, period, period_start, count) "
    "SELECT * FROM unnest(CAST(:s AS varchar[]), CAST(:u AS varchar[]), CAST(:p AS varchar[]), "
    "CAST(:d AS date[]), CAST(:n AS integer[])) "
    "ON CONFLICT (scope, subject, period, period_start) DO UPDATE SET count = c.count + EXCLUDED.count"
)
_PG_SUBTRACT = text(
    "UPDATE fz_counters AS c SET count = GREATEST(c.count - k.n, 0) "
    "FROM unnest(CAST(:s AS varchar[]), CAST(:u AS varchar[]), CAST(:p AS varchar[]), CAST(:d AS date[]), "
    "CAST(:n AS integer[])) AS k(s, u, p, d, n) "
    "WHERE c.scope = k.s AND c.subject = k.u AND c.period = k.p AND c.period_start = k.d"
)
# The minutes of a window: a range of the primary key per subject (at most the minutes that had a
# message since `since`), never a scan of messages.
_PG_READ_MINUTES = text(
    "SELECT m.scope, m.subject, m.minute, m.count FROM unnest(CAST(:s AS varchar[]), "
    "CAST(:u AS varchar[])) AS k(s, u) JOIN fz_minutes AS m ON m.scope = k.s AND m.subject = k.u "
    "AND m.minute > :since"
)
_PG_ADD_MINUTES = text(
    "INSERT INTO fz_minutes AS m (scope, subject, minute, count) "
    "SELECT * FROM unnest(CAST(:s AS varchar[]), CAST(:u AS varchar[]), CAST(:m AS timestamptz[]), "
    "CAST(:n AS integer[])) "
    "ON CONFLICT (scope, subject, minute) DO UPDATE SET count = GREATEST(m.count + EXCLUDED.count, 0)"
)


def _columns(keys: Sequence[CounterKey]) -> dict[str, list]:
    return {
        "s": [k[0] for k in keys],
        "u": [k[1] for k in keys],
        "p": [k[2] for k in keys],
        "d": [k[3] for k in keys],
    }


def _key_filter(keys: list[CounterKey]) -> ColumnElement[bool]:
    return tuple_(c.scope, c.subject, c.period, c.period_start).in_(keys)


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
            select(c.scope, c.subject, c.period, c.period_start, c.count).where(_key_filter(wanted))
        )
    for r in rows:
        out[(r.scope, r.subject, r.period, r.period_start)] = r.count
    return out


def read_minutes(
    conn: Connection, pairs: Iterable[Subject], since: datetime
) -> dict[Subject, dict[datetime, int]]:
    """The minute counts after `since` of these (scope, subject) pairs, in one statement."""
    wanted = sorted(set(pairs))
    out: dict[Subject, dict[datetime, int]] = {p: {} for p in wanted}
    if not wanted:
        return out
    if conn.dialect.name == "postgresql":
        params = {"s": [p[0] for p in wanted], "u": [p[1] for p in wanted], "since": since}
        rows = conn.execute(_PG_READ_MINUTES, params)
    else:
        rows = conn.execute(
            select(mc.scope, mc.subject, mc.minute, mc.count).where(
                tuple_(mc.scope, mc.subject).in_(wanted), mc.minute > since
            )
        )
    for r in rows:
        out[(r.scope, r.subject)][rolling.minute_of(r.minute)] = r.count
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
            index_elements=[c.scope, c.subject, c.period, c.period_start],
            set_={"count": c.count + stmt.excluded.count},
        )
        conn.execute(
            stmt,
            [
                {"scope": k[0], "subject": k[1], "period": k[2], "period_start": k[3], "count": n}
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


def add_minutes(conn: Connection, changes: Mapping[MinuteKey, int]) -> None:
    """Apply changes to minute rows, in key order, in one upsert (a subtraction never goes below 0)."""
    rows = sorted((k, n) for k, n in changes.items() if n != 0)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            _PG_ADD_MINUTES,
            {
                "s": [k[0] for k, _ in rows],
                "u": [k[1] for k, _ in rows],
                "m": [k[2] for k, _ in rows],
                "n": [n for _, n in rows],
            },
        )
        return
    additions = [{"scope": k[0], "subject": k[1], "minute": k[2], "count": n} for k, n in rows if n > 0]
    if additions:
        stmt = sqlite.insert(minutes_t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[mc.scope, mc.subject, mc.minute], set_={"count": mc.count + stmt.excluded.count}
        )
        conn.execute(stmt, additions)
    for (scope, subject, minute), n in rows:
        if n < 0:
            conn.execute(
                update(minutes_t)
                .where(mc.scope == scope, mc.subject == subject, mc.minute == minute)
                .values(count=func.max(mc.count + n, 0))
            )


def mark_counted(conn: Connection, counted: Mapping[int, tuple[date, datetime]]) -> None:
    """Remember on each message (by pk) the local day and the minute it was counted in: one UPDATE per
    distinct pair (a batch is claimed at one moment, so usually one or two)."""
    by_moment: dict[tuple[date, datetime], list[int]] = defaultdict(list)
    for pk, moment in counted.items():
        by_moment[moment].append(pk)
    for (day, minute), pks in sorted(by_moment.items()):
        conn.execute(
            update(messages_t)
            .where(messages_t.c.pk.in_(sorted(pks)))
            .values(fz_counted_on=day, fz_counted_at=minute)
        )


# --- counts for the check endpoint --------------------------------------------------------------------


def counts(conn: Connection, scope: str, subject: str, at: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The counts of the day, week and month containing `at` in `tz`, and of the rolling 24 h, 7 d and
    30 d ending at `at`: the counters less the releases not folded into them yet. What the policy judges
    by (it folds those releases first)."""
    keys = keys_at(scope, subject, at, tz)
    found = read(conn, keys.values())
    minutes = read_minutes(conn, [(scope, subject)], at - rolling.LONGEST)[(scope, subject)]
    for day, minute in _released(conn, scope, subject):
        for key in keys_for_day(scope, subject, day):
            if key in found:
                found[key] -= 1
        if minute is not None and minute in minutes:
            minutes[minute] -= 1
    out: dict[str, int] = {kind: max(found[keys[kind]], 0) for kind in PERIOD_KINDS}
    for kind, span in rolling.SPANS.items():
        out[kind] = rolling.count_in(minutes, at, span)
    return out


def _released(conn: Connection, scope: str, subject: str) -> list[tuple[date, datetime | None]]:
    r = releases_t.c
    rows = conn.execute(select(r.counted_on, r.counted_minute).where(r.scope == scope, r.subject == subject))
    return [
        (row.counted_on, rolling.minute_of(row.counted_minute) if row.counted_minute else None)
        for row in rows
    ]


_PG_FOLD = text(
    "DELETE FROM fz_releases AS f USING unnest(CAST(:s AS varchar[]), CAST(:u AS varchar[])) AS k(s, u) "
    "WHERE f.scope = k.s AND f.subject = k.u "
    "RETURNING f.scope, f.subject, f.counted_on, f.counted_minute"
)


def take_releases(conn: Connection, pairs: Iterable[Subject]) -> list[tuple[str, str, date, datetime | None]]:
    """Delete and return the releases of these (scope, subject) pairs: one statement. Call it only
    with their locks held (the caller then takes them off the counters)."""
    wanted = sorted(set(pairs))
    if not wanted:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_PG_FOLD, {"s": [p[0] for p in wanted], "u": [p[1] for p in wanted]})
    else:
        r = releases_t.c
        rows = conn.execute(
            delete(releases_t)
            .where(tuple_(r.scope, r.subject).in_(wanted))
            .returning(r.scope, r.subject, r.counted_on, r.counted_minute)
        )
    return [
        (
            row.scope,
            row.subject,
            row.counted_on,
            rolling.minute_of(row.counted_minute) if row.counted_minute else None,
        )
        for row in rows
    ]


class CounterCache:
    """The counts a batch decides by. `fold` takes the batch's pending releases; each counter row (and
    each subject's minutes, for the rolling windows) is then read from the database once, kept up to
    date in memory with what the batch changes, and the changes are written back by `flush`. Only valid
    while the batch's locks are held (the claim)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.values: dict[CounterKey, int] = {}
        self.changes: dict[CounterKey, int] = defaultdict(int)
        self.minutes: dict[Subject, dict[datetime, int]] = {}
        self.minute_changes: dict[MinuteKey, int] = defaultdict(int)

    def fold(self, pairs: Iterable[Subject]) -> None:
        """Take the releases of these pairs off their counters (in memory now; written by `flush`)."""
        for scope, subject, day, minute in take_releases(self.conn, pairs):
            for key in keys_for_day(scope, subject, day):
                self.changes[key] -= 1
                if key in self.values:
                    self.values[key] -= 1
            if minute is not None:
                self.minute_changes[(scope, subject, minute)] -= 1

    def load(self, keys: Iterable[CounterKey]) -> None:
        missing = [k for k in set(keys) if k not in self.values]
        if missing:
            for key, stored in read(self.conn, missing).items():
                self.values[key] = max(stored + self.changes.get(key, 0), 0)

    def load_minutes(self, pairs: Iterable[Subject], since: datetime) -> None:
        """Read the minutes after `since` of these pairs (those needed by a rolling window), once."""
        missing = [p for p in set(pairs) if p not in self.minutes]
        for pair, found in read_minutes(self.conn, missing, since).items():
            for (scope, subject, minute), n in self.minute_changes.items():
                if (scope, subject) == pair and minute in found:
                    found[minute] = max(found[minute] + n, 0)
            self.minutes[pair] = found

    def counts_at(
        self, scope: str, subjects: Sequence[str], at: datetime, tz: ZoneInfo, with_rolling: bool
    ) -> dict[str, int]:
        """For each period (and rolling window), the highest count among the subjects: a message is
        held to the limit of each of them (the same limits)."""
        out: dict[str, int] = {}
        for subject in subjects:
            keys = keys_at(scope, subject, at, tz)
            self.load(keys.values())  # a later period (asked when deferring) costs one more read
            for kind, key in keys.items():
                out[kind] = max(out.get(kind, 0), self.values[key])
            if with_rolling:
                minutes = self.minutes[(scope, subject)]
                for kind, span in rolling.SPANS.items():
                    out[kind] = max(out.get(kind, 0), rolling.count_in(minutes, at, span))
        return out

    def room_from(
        self, scope: str, subjects: Sequence[str], kind: rolling.RollingKind, at: datetime, limit: int
    ) -> datetime | None:
        """The first moment at or after `at` at which the rolling window `kind` of every subject has
        room under `limit`."""
        out = at
        for subject in subjects:
            free = rolling.room_from(self.minutes[(scope, subject)], at, rolling.SPANS[kind], limit)
            if free is None:
                return None
            out = max(out, free)
        return out

    def count(self, scope: str, subjects: Sequence[str], day: date, minute: datetime) -> None:
        for subject in subjects:
            keys = keys_for_day(scope, subject, day)
            self.load(keys)
            for key in keys:
                self.values[key] += 1
                self.changes[key] += 1
            self.minute_changes[(scope, subject, minute)] += 1
            loaded = self.minutes.get((scope, subject))
            if loaded is not None:
                loaded[minute] = loaded.get(minute, 0) + 1

    def flush(self) -> None:
        add(self.conn, self.changes)
        add_minutes(self.conn, self.minute_changes)
        self.changes.clear()
        self.minute_changes.clear()


def count_now(conn: Connection, scope: str, subjects: Sequence[str], at: datetime, tz: ZoneInfo) -> None:
    """Count one interaction at `at` (a reported one: past), under the subjects' locks, in the local
    periods of `at` in `tz` and its minute. In the caller's transaction."""
    pairs = [(scope, s) for s in subjects]
    lock_subjects(conn, pairs)
    cache = CounterCache(conn)
    cache.count(scope, subjects, at.astimezone(tz).date(), rolling.minute_of(at))
    cache.flush()


# --- un-counting --------------------------------------------------------------------------------------


def release(conn: Connection, pk: int) -> bool:
    """Un-count a message (by pk) if it is counted, in the caller's transaction: it is marked not
    counted and release rows (one per subject) record what to take off its counters. Idempotent: True
    only the one time it un-counts. Touches no counter row, so it never waits for a claim.

    The row lock (FOR UPDATE on PostgreSQL; the single writer on SQLite) makes two concurrent releases
    of one message see each other: the second finds it no longer counted. The scope is the entity's at
    release time (a limit group changed while the message was being sent un-counts it from the new one)."""
    m = messages_t.c
    row = conn.execute(
        select(m.legal_entity_id, m.recipient, m.debtor, m.fz_counted_on, m.fz_counted_at)
        .where(m.pk == pk)
        .with_for_update()
    ).first()
    if row is None or row.fz_counted_on is None:
        return False
    e = LegalEntity.__table__.c
    entity = conn.execute(select(e.id, e.fz_limit_group).where(e.id == row.legal_entity_id)).one()
    scope = scope_of(entity)
    conn.execute(update(messages_t).where(m.pk == pk).values(fz_counted_on=None, fz_counted_at=None))
    conn.execute(
        insert(releases_t),
        [
            {
                "scope": scope,
                "subject": subject,
                "counted_on": row.fz_counted_on,
                "counted_minute": row.fz_counted_at,
            }
            for subject in subjects_of(row.recipient, row.debtor)
        ],
    )
    return True


def purge(conn: Connection, before: date) -> int:
    """Delete the counter rows of periods that ended on or before local date `before`, the minutes
    older than the longest rolling window (with a day's margin) before it, and the releases whose
    periods all did: they are never read again by the policy. Keeps the tables at the size of the
    recent traffic (run it daily with a date a few days back). Returns how many rows went."""
    ended = or_(
        and_(c.period == "day", c.period_start < before),
        and_(c.period == "week", c.period_start <= before - timedelta(days=7)),
        and_(c.period == "month", c.period_start < before.replace(day=1)),
    )
    removed = conn.execute(delete(counters_t).where(ended)).rowcount or 0
    oldest_minute = datetime.combine(before, datetime.min.time(), tzinfo=UTC) - rolling.KEEP
    removed += conn.execute(delete(minutes_t).where(mc.minute < oldest_minute)).rowcount or 0
    # A release's periods have all ended when its month has and its week has (a week may straddle months).
    cutoff = min(before.replace(day=1), before - timedelta(days=before.weekday()), oldest_minute.date())
    removed += conn.execute(delete(releases_t).where(releases_t.c.counted_on < cutoff)).rowcount or 0
    return int(removed)
