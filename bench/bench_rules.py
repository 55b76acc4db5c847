"""Benchmark of the rules check: the time per send decision (`policy.decide_many`: per-debtor and
per-number locks, the FZ counters and the rolling windows' minutes read, counted and marked) with 10
thousand and with 1 million past messages in the tables, every entity with `fz.rolling_windows` on and
every message about a debtor (three numbers each).

The counts come from the `fz_counters` table by primary key and the rolling windows from `fz_minutes`
by a key range, never from a scan of `messages`, so the time per decision must not grow with the
history: the 1M figure must be at most 1.5x the 10k figure (the exit code is 1 otherwise).
The large run also has 100 thousand stop-list entries, the small one none. The stop-list lookup alone
(`stop_list.stopped`, one query per batch through the unique (scope, kind, value) index) is also
measured with none and with 100 thousand entries, and its ratio reported (not gated: an empty index
against a three-level one differs by a few microseconds a message, which the machine's noise can push
either way; the gate is the whole decision).

    python bench/bench_rules.py [--batches 60] [--batch-size 50] [--keep]

It makes its own PostgreSQL database on 127.0.0.1:5432 (BENCH_POSTGRES_URL names another server's
maintenance database), migrates it, seeds it with INSERT ... SELECT generate_series (a million rows in
well under a minute), measures, and drops it afterwards (unless --keep).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ENTITIES = 10
HISTORY_DAYS = 60
SMALL, LARGE = 10_000, 1_000_000
STOP_ENTRIES = 100_000
DEBTORS = 50_000  # debtor ids of the benchmark's messages: "debtor-<n>"
# recipients of the history: 1 per 10 past messages, so the large history has 100k numbers
MESSAGES_PER_RECIPIENT = 10
NUMBERS_PER_DEBTOR = 3
WARM_UP = 10  # batches run before measuring (plans, caches, the connection pool)


def admin_exec(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def phone(i: int) -> str:
    return f"+7916{i:07d}"


def debtor(i: int) -> str:
    """The debtor of the number `phone(i)`: three numbers each."""
    return f"debtor-{i // NUMBERS_PER_DEBTOR}"


# --- seeding ------------------------------------------------------------------------------------------

SEED_MESSAGES = """
INSERT INTO messages (id, legal_entity_id, recipient, text, status, segments, encoding, attempts,
                      status_checks, event_seq, provider_id, provider_message_id, sent_at, fz_counted_on,
                      fz_counted_at, debtor, created_at, updated_at)
SELECT gen_random_uuid(), e.id, '+7916' || lpad((g % :recipients)::text, 7, '0'), 'bench history',
       CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'delivered' END, 1, 'GSM-7', 1, 1, 4,
       :provider_id, g::text, t.at,
       CASE WHEN g % 10 = 0 THEN NULL ELSE (t.at AT TIME ZONE 'Europe/Moscow')::date END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE date_trunc('minute', t.at) END,
       'debtor-' || ((g % :recipients) / :per_debtor)::text,
       t.at, t.at
FROM generate_series(:first, :last) AS g
JOIN legal_entities e ON e.id = (SELECT min(id) FROM legal_entities) + g % :entities
CROSS JOIN LATERAL (
    -- spread over the days of the history (7919 is prime, so consecutive rows land far apart)
    SELECT now() - make_interval(secs => (g::bigint * 7919 % (:days * 86400))::double precision) AS at
) AS t
"""

# What the policy would have counted for those messages: one row per (entity, subject, period) for the
# debtor and for the number of each, and one per (entity, subject, minute) of the last 31 days (older
# minutes are purged).
REBUILD_COUNTERS = """
TRUNCATE fz_counters; TRUNCATE fz_minutes;
CREATE TEMP TABLE counted AS
SELECT 'e:' || legal_entity_id::text AS scope, s.subject, fz_counted_on AS d, fz_counted_at AS m
FROM messages CROSS JOIN LATERAL (VALUES (recipient), ('d:' || debtor)) AS s(subject)
WHERE fz_counted_on IS NOT NULL AND s.subject IS NOT NULL;
INSERT INTO fz_counters (scope, subject, period, period_start, count)
SELECT scope, subject, 'day', d, count(*) FROM counted GROUP BY 1, 2, 4;
INSERT INTO fz_counters (scope, subject, period, period_start, count)
SELECT scope, subject, 'week', date_trunc('week', d)::date, count(*) FROM counted GROUP BY 1, 2, 4;
INSERT INTO fz_counters (scope, subject, period, period_start, count)
SELECT scope, subject, 'month', date_trunc('month', d)::date, count(*) FROM counted GROUP BY 1, 2, 4;
INSERT INTO fz_minutes (scope, subject, minute, count)
SELECT scope, subject, m, count(*) FROM counted WHERE m > now() - interval '31 days' GROUP BY 1, 2, 3;
DROP TABLE counted;
ANALYZE messages; ANALYZE fz_counters; ANALYZE fz_minutes;
"""


def make_entities() -> int:
    from smsqueue.db import session_scope
    from smsqueue.rules import admin

    open_all_day = {
        "send_window_from": "00:00",
        "send_window_to": "24:00",
        "fz_enabled": True,
        "fz_weekday_from": "00:00",
        "fz_weekday_to": "24:00",
        "fz_weekend_from": "00:00",
        "fz_weekend_to": "24:00",
        # far above what the history holds, so every decision goes the whole way and counts
        "fz_per_day": 1000,
        "fz_per_week": 1000,
        "fz_per_month": 1000,
        "fz_rolling_windows": True,
    }
    with session_scope() as session:
        provider, _ = admin.create_provider(session, code="bench", kind="smsc", settings={"login": "x"})
        for i in range(ENTITIES):
            entity, _ = admin.create_entity(session, code=f"bench-{i}", **open_all_day)
            admin.link_provider(session, entity, provider)
        return provider.id


# Indexes of `messages` that back no constraint: dropped while a large history is loaded and built again
# after it (one sort per index instead of a million insertions into each).
SECONDARY_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE x.indrelid = 'messages'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
"""


def seed(first: int, last: int, provider_id: int) -> float:
    """Past messages first..last (numbered), then the counters they would have made. Seconds taken."""
    from sqlalchemy import text

    from smsqueue.db import transaction

    params = {
        "first": first,
        "last": last,
        "recipients": max(1, last // MESSAGES_PER_RECIPIENT),
        "entities": ENTITIES,
        "days": HISTORY_DAYS,
        "provider_id": provider_id,
        "per_debtor": NUMBERS_PER_DEBTOR,
    }
    bulk = last - first > 100_000
    started = time.perf_counter()
    with transaction() as conn:
        indexes = conn.execute(text(SECONDARY_INDEXES)).all() if bulk else []
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        if bulk:  # triggers of other features (e.g. change positions) are not what is measured here
            conn.exec_driver_sql("ALTER TABLE messages DISABLE TRIGGER USER")
        conn.execute(text(SEED_MESSAGES), params)
        if bulk:
            conn.exec_driver_sql("ALTER TABLE messages ENABLE TRIGGER USER")
        for _, definition in indexes:
            conn.exec_driver_sql(definition)
        conn.exec_driver_sql(REBUILD_COUNTERS)
    return time.perf_counter() - started


# Stop-list entries spread over the entities, half numbers (of the history's range, so some are hit) and
# half debtors. 7 is invertible mod 100000, so no two rows of one scope share a number.
SEED_STOP_LIST = """
INSERT INTO stop_list_entries (scope, kind, value, reason, created_at, updated_at)
SELECT 'e:' || ((SELECT min(id) FROM legal_entities) + g % :entities),
       CASE WHEN g % 2 = 0 THEN 'number' ELSE 'debtor' END,
       CASE WHEN g % 2 = 0 THEN '+7916' || lpad((g * 7 % 100000)::text, 7, '0') ELSE 'debtor-' || g END,
       'refused', now(), now()
FROM generate_series(1, :n) AS g
ON CONFLICT DO NOTHING;
ANALYZE stop_list_entries;
"""


def seed_stop_list(n: int) -> float:
    from sqlalchemy import text

    from smsqueue.db import transaction

    started = time.perf_counter()
    with transaction() as conn:
        conn.execute(text(SEED_STOP_LIST), {"n": n, "entities": ENTITIES})
    return time.perf_counter() - started


def candidates_of(rows: list, entities: dict) -> list:
    """The claim's stop-list candidates for these message rows (as sending._stop_listed makes them)."""
    from smsqueue.rules import stop_list

    return [
        stop_list.Candidate(r.pk, stop_list.scopes_of(entities[r.legal_entity_id]), r.recipient, r.debtor)
        for r in rows
    ]


def measure_stop_list(history: int, batches: int, batch_size: int) -> tuple[list[float], int]:
    """Seconds per message of the stop-list lookup alone, batch by batch (numbers of the history, each
    message with a debtor), and how many messages it found stopped."""
    import random

    from sqlalchemy import select

    from smsqueue.clock import now
    from smsqueue.db import get_engine
    from smsqueue.models import LegalEntity
    from smsqueue.rules import stop_list

    rng = random.Random(history + 1)
    recipients = max(1, history // MESSAGES_PER_RECIPIENT)
    engine = get_engine()
    with engine.connect() as conn:
        entity_ids = sorted(r.id for r in conn.execute(select(LegalEntity.__table__.c.id)))
    per_message: list[float] = []
    hits = 0
    with engine.connect() as conn:
        for i in range(batches + WARM_UP):
            batch = [
                stop_list.Candidate(
                    n,
                    (f"e:{rng.choice(entity_ids)}",),
                    phone(rng.randrange(recipients)),
                    f"debtor-{rng.randrange(DEBTORS)}",
                )
                for n in range(batch_size)
            ]
            started = time.perf_counter()
            found = stop_list.stopped(conn, batch, now())
            elapsed = time.perf_counter() - started
            conn.rollback()
            if i >= WARM_UP:
                per_message.append(elapsed / batch_size)
                hits += len(found)
    return per_message, hits


def table_sizes() -> tuple[int, int, int]:
    from sqlalchemy import text

    from smsqueue.db import transaction

    with transaction() as conn:
        messages = conn.execute(text("SELECT count(*) FROM messages")).scalar_one()
        counters = conn.execute(text("SELECT count(*) FROM fz_counters")).scalar_one()
        minutes = conn.execute(text("SELECT count(*) FROM fz_minutes")).scalar_one()
    return messages, counters, minutes


# --- measuring ----------------------------------------------------------------------------------------


def measure(history: int, batches: int, batch_size: int) -> list[float]:
    """Seconds per decision of each batch: new queued messages to numbers of the history, decided in a
    transaction that is rolled back, so every batch meets the same counters."""
    import random
    import uuid

    from sqlalchemy import select

    from smsqueue.db import get_engine
    from smsqueue.messages import NewMessage, insert_messages, messages_t
    from smsqueue.models import LegalEntity
    from smsqueue.rules import policy, stop_list

    rng = random.Random(history)
    recipients = max(1, history // MESSAGES_PER_RECIPIENT)
    engine = get_engine()
    per_decision: list[float] = []
    with engine.connect() as conn:
        entities = {r.id: r for r in conn.execute(select(LegalEntity.__table__))}
        entity_ids = sorted(entities)
    for _ in range(batches + WARM_UP):  # the first ones warm the caches and are not counted
        with engine.connect() as conn:
            tx = conn.begin()
            numbers = [rng.randrange(recipients) for _ in range(batch_size)]
            items = [
                NewMessage(
                    id=uuid.uuid4(),
                    legal_entity_id=rng.choice(entity_ids),
                    to=phone(n),
                    debtor=debtor(n),
                    text="bench",
                    segments=1,
                    encoding="GSM-7",
                )
                for n in numbers
            ]
            pks = [m.pk for m in insert_messages(conn, items)]
            rows = list(
                conn.execute(select(messages_t).where(messages_t.c.pk.in_(pks)).order_by(messages_t.c.pk))
            )
            started = time.perf_counter()
            at = policy_now()
            stopped = stop_list.stopped(conn, candidates_of(rows, entities), at)
            pairs = [(row, entities[row.legal_entity_id]) for row in rows if row.pk not in stopped]
            decisions = policy.decide_many(conn, pairs, at)
            elapsed = time.perf_counter() - started
            tx.rollback()
        assert all(isinstance(d, policy.Allow) for d in decisions), decisions
        per_decision.append(elapsed / batch_size)
    return per_decision[WARM_UP:]


def policy_now():
    from smsqueue.clock import now

    return now()


def report(label: str, history: tuple[int, int, int], seeded_in: float, samples: list[float]) -> float:
    median = statistics.median(samples)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    print(
        f"{label:>4} past messages ({history[0]:>9,} messages, {history[1]:>9,} counter rows, "
        f"{history[2]:>9,} minute rows; seeded in "
        f"{seeded_in:5.1f} s): {median * 1e6:7.1f} us per decision (median of {len(samples)} batches; "
        f"mean {statistics.mean(samples) * 1e6:.1f}, p95 {p95 * 1e6:.1f})"
    )
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="measured batches per history size")
    parser.add_argument("--batch-size", type=int, default=50, help="messages per batch (a send task's)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    name = f"smsq_bench_rules_{os.getpid()}_{secrets.token_hex(3)}"
    admin_exec(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url(name)
    os.environ.setdefault("SMSQUEUE_SECRET_KEY", "bench-" + secrets.token_hex(16))
    os.environ.setdefault("SMSQUEUE_LOG_LEVEL", "WARNING")
    try:
        import logging

        from smsqueue.cli import alembic_config
        from smsqueue.config import settings
        from smsqueue.db import reset_engine

        settings.cache_clear()
        reset_engine()
        from alembic import command

        config = alembic_config()
        config.attributes["configure_logging"] = False  # type: ignore[attr-defined]
        command.upgrade(config, "head")  # type: ignore[arg-type]
        logging.getLogger("alembic").setLevel(logging.WARNING)
        provider_id = make_entities()

        print(
            f"rules check: policy.decide_many, batches of {args.batch_size}, debtors, rolling windows on, "
            f"database {name}"
        )
        seconds = seed(1, SMALL, provider_id)
        lookups_none, _ = measure_stop_list(SMALL, args.batches, args.batch_size)
        small = report("10k", table_sizes(), seconds, measure(SMALL, args.batches, args.batch_size))
        seconds = seed(SMALL + 1, LARGE, provider_id) + seed_stop_list(STOP_ENTRIES)
        lookups_full, hits = measure_stop_list(SMALL, args.batches, args.batch_size)
        large = report("1M", table_sizes(), seconds, measure(LARGE, args.batches, args.batch_size))
        ratio = large / small
        verdict = "ok" if ratio <= 1.5 else "TOO SLOW"
        print(f"(the 1M run also has {STOP_ENTRIES:,} stop-list entries, the 10k run none)")
        print(f"ratio 1M / 10k: {ratio:.2f} (must be <= 1.5): {verdict}")
        none, full = statistics.median(lookups_none), statistics.median(lookups_full)
        stop_ratio = full / none
        print(
            f"stop-list lookup (stop_list.stopped, batches of {args.batch_size}, number and debtor each): "
            f"{none * 1e6:.1f} us per message with no entries, {full * 1e6:.1f} us with {STOP_ENTRIES:,} "
            f"({hits} of {len(lookups_full) * args.batch_size} stopped); ratio {stop_ratio:.2f}"
        )
        return 0 if ratio <= 1.5 else 1
    finally:
        from smsqueue.db import reset_engine

        reset_engine()
        if args.keep:
            print(f"kept database {name}")
        else:
            admin_exec(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                "AND pid <> pg_backend_pid()"
            )
            admin_exec(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    sys.exit(main())
