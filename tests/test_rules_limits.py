"""The 230-FZ counting in the database: `policy.decide_many` counts what it allows, atomically per
(entity, number); `policy.release` un-counts once; concurrent claims in separate transactions never pass
a limit on PostgreSQL; the same code runs on SQLite."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from smsqueue.db import get_engine, transaction
from smsqueue.messages import NewMessage, insert_messages, messages_t
from smsqueue.models import LegalEntity
from smsqueue.models.limits import FzCounter
from smsqueue.rules import limits, policy

PHONE = "+79161234567"
OTHER = "+79161234568"
# Wednesday 12:00 in Moscow: inside every default window.
WEDNESDAY_NOON = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OPEN_ALL_DAY = {
    "send_window_from": "00:00",
    "send_window_to": "24:00",
    "fz_enabled": True,
    "fz_weekday_from": "00:00",
    "fz_weekday_to": "24:00",
    "fz_weekend_from": "00:00",
    "fz_weekend_to": "24:00",
}


def send_now(pks: list[int]) -> None:
    """The sender's work for these messages, in this process (no worker); its metrics are written out
    at once so that none stay pending in this process for a later test to find."""
    from smsqueue import metrics, sending

    sending.process(pks)
    metrics.flush(force=True)


def entity_row(conn, entity_id: int):
    return conn.execute(select(LegalEntity.__table__).where(LegalEntity.id == entity_id)).one()


def new_messages(conn, entity_id: int, recipients: list[str], **fields) -> list:
    items = [
        NewMessage(
            id=uuid.uuid4(), legal_entity_id=entity_id, to=r, text="x", segments=1, encoding="GSM-7", **fields
        )
        for r in recipients
    ]
    pks = [m.pk for m in insert_messages(conn, items)]
    return list(conn.execute(select(messages_t).where(messages_t.c.pk.in_(pks)).order_by(messages_t.c.pk)))


def entity_of(scope: str) -> int | str:
    """The entity id of an entity's scope ("e:12" -> 12); a group's scope as it is."""
    return int(scope[2:]) if scope.startswith("e:") else scope


def calendar(conn, entity_id: int, subject: str, at: datetime, tz) -> dict[str, int]:
    """An entity's calendar counts (day, week, month) of a subject, as the check endpoint reads them."""
    found = limits.counts(conn, f"e:{entity_id}", subject, at, tz)
    return {k: found[k] for k in ("day", "week", "month")}


def counter_rows(conn=None) -> dict[tuple, int]:
    def read(c):
        rows = c.execute(select(FzCounter.__table__))
        return {(entity_of(r.scope), r.subject, r.period, r.period_start): r.count for r in rows}

    if conn is not None:
        return read(conn)
    with transaction() as c:
        return read(c)


def release_rows(conn) -> list[tuple]:
    from smsqueue.models.limits import FzRelease

    rows = conn.execute(select(FzRelease.scope, FzRelease.subject, FzRelease.counted_on))
    return [(entity_of(r.scope), r.subject, r.counted_on) for r in rows]


def counted_on(pk: int):
    with transaction() as conn:
        return conn.execute(select(messages_t.c.fz_counted_on).where(messages_t.c.pk == pk)).scalar_one()


def kinds(decisions) -> list[str]:
    return [type(d).__name__ + (f":{d.reason}" if hasattr(d, "reason") else "") for d in decisions]


def test_a_batch_to_one_number_allows_up_to_the_limit_and_counts_in_order(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [PHONE, OTHER, PHONE, PHONE, PHONE])
        decisions = policy.decide_many(conn, [(r, entity_row(conn, entity.id)) for r in rows], WEDNESDAY_NOON)
    assert kinds(decisions) == ["Allow", "Allow", "Allow", "Reject:fz_daily_limit", "Reject:fz_daily_limit"]
    day, monday, first = date(2026, 11, 25), date(2026, 11, 23), date(2026, 11, 1)
    assert counter_rows() == {
        (entity.id, PHONE, "day", day): 2,
        (entity.id, PHONE, "week", monday): 2,
        (entity.id, PHONE, "month", first): 2,
        (entity.id, OTHER, "day", day): 1,
        (entity.id, OTHER, "week", monday): 1,
        (entity.id, OTHER, "month", first): 1,
    }
    assert [counted_on(r.pk) for r in rows] == [day, day, day, None, None]


def test_counts_carry_over_between_batches_and_periods(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_per_week=3, fz_per_month=4)
    decided = []
    # Mon, Mon, Tue (week full after it), Wed, next Mon, next Mon (month full after 4)
    moments = [
        datetime(2026, 11, 23, 9, tzinfo=UTC),
        datetime(2026, 11, 23, 10, tzinfo=UTC),
        datetime(2026, 11, 24, 9, tzinfo=UTC),
        datetime(2026, 11, 25, 9, tzinfo=UTC),
        datetime(2026, 11, 30, 9, tzinfo=UTC),
        datetime(2026, 11, 30, 10, tzinfo=UTC),
    ]
    for at in moments:
        with transaction() as conn:
            (row,) = new_messages(conn, entity.id, [PHONE])
            decided += policy.decide_many(conn, [(row, entity_row(conn, entity.id))], at)
    assert kinds(decided) == [
        "Allow",
        "Allow",
        "Allow",
        "Reject:fz_weekly_limit",
        "Allow",
        "Reject:fz_monthly_limit",
    ]
    with transaction() as conn:
        assert calendar(conn, entity.id, PHONE, moments[-1], _msk()) == {"day": 1, "week": 1, "month": 4}
        # December opens a new month
        december = datetime(2026, 12, 1, 9, tzinfo=UTC)
        assert calendar(conn, entity.id, PHONE, december, _msk()) == {"day": 0, "week": 1, "month": 0}


def _msk():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Moscow")


def test_on_limit_defer_gives_the_start_of_the_next_local_day(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=1, fz_on_limit="defer")
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [PHONE, PHONE])
        decisions = policy.decide_many(conn, [(r, entity_row(conn, entity.id)) for r in rows], WEDNESDAY_NOON)
    assert decisions[0] == policy.Allow()
    # Thursday 00:00 in Moscow
    assert decisions[1] == policy.Defer(datetime(2026, 11, 25, 21, 0, tzinfo=UTC), "fz_daily_limit")
    assert counted_on(rows[1].pk) is None


def test_the_counting_day_is_the_recipients(factory):
    # 16:00 UTC Wednesday is Thursday 02:00 in Vladivostok (FZ hours all day here)
    entity = factory.entity(**OPEN_ALL_DAY)
    at = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [PHONE], recipient_timezone="Asia/Vladivostok")
        assert policy.decide_many(conn, [(row, entity_row(conn, entity.id))], at) == [policy.Allow()]
    assert counted_on(row.pk) == date(2026, 11, 26)
    assert counter_rows()[(entity.id, PHONE, "day", date(2026, 11, 26))] == 1


def test_fz_off_counts_but_does_not_limit(factory):
    entity = factory.entity(send_window_from="00:00", send_window_to="24:00", fz_enabled=False, fz_per_day=1)
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [PHONE] * 3)
        decisions = policy.decide_many(conn, [(r, entity_row(conn, entity.id)) for r in rows], WEDNESDAY_NOON)
        assert decisions == [policy.Allow()] * 3
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 3,
            "week": 3,
            "month": 3,
        }


def test_rejected_deferred_and_inactive_messages_are_not_counted(factory):
    inactive = factory.entity(**OPEN_ALL_DAY, active=False)
    night = factory.entity(send_window_from="22:00", send_window_to="23:00", fz_enabled=False)
    with transaction() as conn:
        a = new_messages(conn, inactive.id, [PHONE])[0]
        b = new_messages(conn, night.id, [PHONE])[0]
        decisions = policy.decide_many(
            conn, [(a, entity_row(conn, inactive.id)), (b, entity_row(conn, night.id))], WEDNESDAY_NOON
        )
    assert kinds(decisions) == ["Reject:entity_inactive", "Defer:outside_send_window"]
    assert counter_rows() == {}


def test_release_uncounts_once_and_never_an_uncounted_message(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=1)
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [PHONE, PHONE])
        decisions = policy.decide_many(conn, [(r, entity_row(conn, entity.id)) for r in rows], WEDNESDAY_NOON)
    assert kinds(decisions) == ["Allow", "Reject:fz_daily_limit"]
    with transaction() as conn:
        policy.release(conn, rows[1])  # never counted: nothing happens
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 1,
            "week": 1,
            "month": 1,
        }
        policy.release(conn, rows[0])
        policy.release(conn, rows[0])  # twice: once only
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 0,
            "week": 0,
            "month": 0,
        }
    assert counted_on(rows[0].pk) is None
    # released, the number has room again
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [PHONE])
        assert policy.decide_many(conn, [(row, entity_row(conn, entity.id))], WEDNESDAY_NOON) == [
            policy.Allow()
        ]


def test_release_uncounts_the_day_it_was_counted_on_and_the_next_claim_folds_it(factory):
    entity = factory.entity(**OPEN_ALL_DAY)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [PHONE])
        policy.decide_many(conn, [(row, entity_row(conn, entity.id))], WEDNESDAY_NOON)
    # counted on Wednesday; released later (release reads what was counted, not the clock)
    with transaction() as conn:
        policy.release(conn, SimpleNamespace(pk=row.pk))
        assert release_rows(conn) == [(entity.id, PHONE, date(2026, 11, 25))]
        assert set(counter_rows(conn).values()) == {1}  # not touched by the release itself
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 0,
            "week": 0,
            "month": 0,
        }
    # Friday: a claim of the number takes the release off the counters (Wednesday's day, the week and
    # the month), then counts itself on Friday
    friday = WEDNESDAY_NOON + timedelta(days=2)
    with transaction() as conn:
        (other,) = new_messages(conn, entity.id, [PHONE])
        assert policy.decide_many(conn, [(other, entity_row(conn, entity.id))], friday) == [policy.Allow()]
        assert release_rows(conn) == []
        rows = counter_rows(conn)
    assert rows[(entity.id, PHONE, "day", date(2026, 11, 25))] == 0
    assert rows[(entity.id, PHONE, "day", date(2026, 11, 27))] == 1
    assert rows[(entity.id, PHONE, "week", date(2026, 11, 23))] == 1
    assert rows[(entity.id, PHONE, "month", date(2026, 11, 1))] == 1


def test_a_released_message_frees_room_at_once_for_the_next_claim(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=1)
    with transaction() as conn:
        first, second = new_messages(conn, entity.id, [PHONE, PHONE])
        ent = entity_row(conn, entity.id)
        assert kinds(policy.decide_many(conn, [(first, ent)], WEDNESDAY_NOON)) == ["Allow"]
    with transaction() as conn:
        policy.release(conn, first)
    with transaction() as conn:
        assert kinds(policy.decide_many(conn, [(second, ent)], WEDNESDAY_NOON)) == ["Allow"]
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 1,
            "week": 1,
            "month": 1,
        }


def test_a_release_never_waits_for_a_claim_holding_the_counters(factory):
    """The record transaction releases while a claim of the same numbers holds their counter rows (and
    would next need something the record holds): the release must go through at once."""
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=5)
    with transaction() as conn:
        counted = new_messages(conn, entity.id, [PHONE, OTHER])
        ent = entity_row(conn, entity.id)
        policy.decide_many(conn, [(r, ent) for r in counted], WEDNESDAY_NOON)
        waiting = new_messages(conn, entity.id, [PHONE, OTHER])
    engine = get_engine()
    with engine.connect() as claim_conn:
        claim = claim_conn.begin()
        policy.decide_many(claim_conn, [(r, ent) for r in waiting], WEDNESDAY_NOON)  # holds counter rows
        with engine.connect() as record_conn, record_conn.begin():
            record_conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # a wait would fail the test
            policy.release(record_conn, counted[1])
            policy.release(record_conn, counted[0])
        claim.commit()
    with transaction() as conn:
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 1,
            "week": 1,
            "month": 1,
        }
        assert calendar(conn, entity.id, OTHER, WEDNESDAY_NOON, _msk()) == {
            "day": 1,
            "week": 1,
            "month": 1,
        }


def claim_each_at_once(rows: list, ent, at: datetime) -> tuple[list, list]:
    """Each message decided in a transaction of its own, all at once, each holding its transaction
    (and its locks) open a while after deciding: the decisions and the errors."""
    barrier = threading.Barrier(len(rows))
    results: list = []
    errors: list = []

    def claim(row) -> None:
        try:
            with get_engine().begin() as conn:
                barrier.wait(10)
                decision = policy.decide_many(conn, [(row, ent)], at)[0]
                threading.Event().wait(0.05)  # keep the transaction (and its lock) a little longer
                results.append(decision)
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(r,)) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def test_concurrent_claims_in_separate_transactions_never_pass_the_limit(factory):
    """Twelve transactions at once, each deciding one message to the same number, each holding its
    transaction open a while after deciding: exactly `per_day` are allowed."""
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [PHONE] * 12)
        ent = entity_row(conn, entity.id)
    results, errors = claim_each_at_once(rows, ent, WEDNESDAY_NOON)
    assert errors == []
    assert sorted(kinds(results)) == ["Allow"] * 2 + ["Reject:fz_daily_limit"] * 10
    with transaction() as conn:
        assert calendar(conn, entity.id, PHONE, WEDNESDAY_NOON, _msk()) == {
            "day": 2,
            "week": 2,
            "month": 2,
        }


def test_concurrent_batches_sharing_numbers_in_opposite_orders_do_not_deadlock(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=3, fz_per_week=6, fz_per_month=6)
    numbers = [f"+7916123456{i}" for i in range(6)]
    with transaction() as conn:
        batches = [new_messages(conn, entity.id, numbers), new_messages(conn, entity.id, numbers[::-1])]
        batches += [new_messages(conn, entity.id, numbers[i:] + numbers[:i]) for i in range(1, 5)]
        ent = entity_row(conn, entity.id)
    barrier = threading.Barrier(len(batches))
    errors: list = []
    allowed: list = []

    def claim(batch) -> None:
        try:
            with get_engine().begin() as conn:
                barrier.wait(10)
                decisions = policy.decide_many(conn, [(r, ent) for r in batch], WEDNESDAY_NOON)
                allowed.extend(
                    r.recipient for r, d in zip(batch, decisions, strict=True) if d == policy.Allow()
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(allowed) == sorted(numbers * 3)  # 6 batches of each number, 3 allowed per number


def test_lock_keys_are_stable_and_distinct():
    assert limits.lock_key("e:1", PHONE) == limits.lock_key("e:1", PHONE)
    keys = {limits.lock_key(f"e:{e}", f"+7916{n:07d}") for e in range(1, 4) for n in range(1000)}
    assert len(keys) == 3000
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_purge_drops_only_ended_periods(factory):
    from smsqueue.models.limits import FzRelease

    entity = factory.entity()
    with transaction() as conn:
        limits.add(
            conn,
            {
                (f"e:{entity.id}", PHONE, "day", date(2026, 11, 24)): 1,
                (f"e:{entity.id}", PHONE, "day", date(2026, 11, 25)): 1,
                (f"e:{entity.id}", PHONE, "week", date(2026, 11, 16)): 1,
                (f"e:{entity.id}", PHONE, "week", date(2026, 11, 23)): 1,
                (f"e:{entity.id}", PHONE, "month", date(2026, 10, 1)): 1,
                (f"e:{entity.id}", PHONE, "month", date(2026, 11, 1)): 1,
            },
        )
        # Releases: October 31 (its week, October 26 - November 1, and its month have ended by November
        # 25) and November 2 (its week has ended, its month has not).
        conn.execute(
            FzRelease.__table__.insert(),
            [
                {"scope": f"e:{entity.id}", "subject": PHONE, "counted_on": date(2026, 10, 31)},
                {"scope": f"e:{entity.id}", "subject": PHONE, "counted_on": date(2026, 11, 2)},
            ],
        )
        # Three counter rows have ended; both releases stay: their minutes may still be inside a rolling
        # 30 days (a release lives until its day is 31 days gone and its week and month have ended).
        assert limits.purge(conn, date(2026, 11, 25)) == 3
        assert sorted(release_rows(conn)) == [
            (entity.id, PHONE, date(2026, 10, 31)),
            (entity.id, PHONE, date(2026, 11, 2)),
        ]
        # a week straddling two months keeps its releases until the week ends too
        conn.execute(
            FzRelease.__table__.insert(),
            {"scope": f"e:{entity.id}", "subject": PHONE, "counted_on": date(2026, 11, 30)},
        )
        limits.purge(conn, date(2026, 12, 2))  # Oct 31 goes (31 days, its week and month are over)
        assert sorted(release_rows(conn)) == [
            (entity.id, PHONE, date(2026, 11, 2)),
            (entity.id, PHONE, date(2026, 11, 30)),
        ]
        limits.purge(conn, date(2026, 12, 10))  # Nov 2 goes; Nov 30's week (to Dec 6) is over, not its month
        assert release_rows(conn) == [(entity.id, PHONE, date(2026, 11, 30))]
    assert set(counter_rows()) <= {
        (entity.id, PHONE, "day", date(2026, 11, 25)),
        (entity.id, PHONE, "week", date(2026, 11, 23)),
        (entity.id, PHONE, "month", date(2026, 11, 1)),
    }


def test_counting_reads_the_counter_rows_by_primary_key_and_never_messages(factory):
    """The statements the policy counts with find counter rows by key, whatever the size of `messages`
    (sequential scans are switched off so the plan shows what the index allows even on tiny tables)."""
    from sqlalchemy import text

    entity = factory.entity()
    keys = sorted(limits.keys_at(f"e:{entity.id}", PHONE, WEDNESDAY_NOON, _msk()).values())
    with transaction() as conn:
        # A day's traffic to many numbers (so the planner knows the period index is no help), analysed.
        others = [(f"e:{entity.id}", f"+7916{n:07d}", k[2], k[3]) for n in range(2000) for k in keys]
        limits.add(conn, dict.fromkeys(others, 1))
    with transaction() as conn:
        conn.execute(text("ANALYZE fz_counters"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(text("EXPLAIN " + limits._PG_READ.text), limits._columns(keys)).scalars()
        )
        params = {**limits._columns(keys), "n": [1, 1, 1]}
        upsert = "\n".join(conn.execute(text("EXPLAIN " + limits._PG_ADD.text), params).scalars())
    assert "pk_fz_counters" in plan and "Seq Scan" not in plan and "messages" not in plan
    assert "pk_fz_counters" in upsert and "messages" not in upsert


def sqlite_engine(tmp_path):
    """A migrated SQLite database (the embedded default), its engine."""
    from alembic import command
    from smsqueue.cli import alembic_config
    from smsqueue.db import make_engine

    url = f"sqlite:///{tmp_path / 'rules.db'}"
    config = alembic_config()
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    return make_engine(url)


def insert_sqlite_entity(conn, **changes) -> None:
    """Entity 1, "acme", open all day, 2/4/16."""
    conn.execute(
        LegalEntity.__table__.insert(),
        {
            "id": 1,
            "code": "acme",
            "name": "acme",
            "webhook_secret": "x",
            **OPEN_ALL_DAY,
            "fz_per_day": 2,
            "active": True,
            "timezone": "Europe/Moscow",
            "on_window": "defer",
            "fz_per_week": 4,
            "fz_per_month": 16,
            "fz_holidays_as_weekends": True,
            "fz_on_limit": "reject",
            "created_at": WEDNESDAY_NOON,
            "updated_at": WEDNESDAY_NOON,
            **changes,
        },
    )


def test_the_same_code_runs_on_sqlite(tmp_path):
    engine = sqlite_engine(tmp_path)
    try:
        with engine.begin() as conn:
            insert_sqlite_entity(conn)
            rows = new_messages(conn, 1, [PHONE] * 3)
            ent = conn.execute(select(LegalEntity.__table__)).one()
            decisions = policy.decide_many(conn, [(r, ent) for r in rows], WEDNESDAY_NOON)
            assert kinds(decisions) == ["Allow", "Allow", "Reject:fz_daily_limit"]
            policy.release(conn, rows[0])
            policy.release(conn, rows[0])
            assert calendar(conn, 1, PHONE, WEDNESDAY_NOON, _msk()) == {"day": 1, "week": 1, "month": 1}
            assert calendar(conn, 1, PHONE, WEDNESDAY_NOON + timedelta(days=1), _msk())["day"] == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("status_path", ["failure", "retry"])
def test_the_sender_releases_a_message_the_provider_did_not_take(factory, simulator, status_path):
    """Through the real sender (in-process): a provider refusal un-counts, so the number keeps its room."""
    if status_path == "failure":
        simulator.set_behaviour(error_code=7)  # SMSC: bad phone number, permanent
    else:
        simulator.set_behaviour(fail_http=500, fail_http_times=1)
    entity = factory.entity(factory.provider(simulator.url), **OPEN_ALL_DAY, fz_per_day=1)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [PHONE])
    send_now([row.pk])
    with transaction() as conn:
        status = conn.execute(select(messages_t.c.status).where(messages_t.c.pk == row.pk)).scalar_one()
        counts = calendar(conn, entity.id, PHONE, datetime.now(UTC), _msk())
    expected_status = "failed" if status_path == "failure" else "queued"
    assert status == expected_status
    assert counts == {"day": 0, "week": 0, "month": 0}
    assert counted_on(row.pk) is None
