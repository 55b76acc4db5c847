"""230-FZ counting per person (issue 10): a debtor's numbers share one allowance; entities of one
`fz.limit_group` share their counts; rolling 24 h / 7 d / 30 d windows on top of the calendar periods,
judged at frozen moments (`decide_many` takes the moment); `fz.unknown_zone: "strictest"`; interactions
made elsewhere counted in the period of their `at`. Against PostgreSQL, through the policy the sender
uses (`policy.decide_many` in one transaction per claim)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from test_rules_limits import (
    OPEN_ALL_DAY,
    claim_each_at_once,
    entity_row,
    insert_sqlite_entity,
    kinds,
    new_messages,
    sqlite_engine,
)

from smsqueue.db import transaction
from smsqueue.messages import messages_t
from smsqueue.models import LegalEntity
from smsqueue.rules import interactions, limits, policy, rolling
from smsqueue.rules.check import EntityRules, decide, recipient_zone, window_zones

MSK = ZoneInfo("Europe/Moscow")
N1, N2, N3 = "+79161234567", "+79161234568", "+79161234569"
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
# One yesterday evening and one today: one in today's calendar day, two in the week, the month and
# every rolling window.
ONE_TODAY_TWO_IN_EACH_WINDOW = {
    "day": 1,
    "week": 2,
    "month": 2,
    "rolling_24h": 2,
    "rolling_7d": 2,
    "rolling_30d": 2,
}


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


def decide_at(entity_id: int, at: datetime, recipients: list[str], **fields) -> list:
    """New messages (Moscow time) claimed in one batch at `at`."""
    with transaction() as conn:
        rows = new_messages(conn, entity_id, recipients, recipient_timezone="Europe/Moscow", **fields)
        return policy.decide_many(conn, [(r, entity_row(conn, r.legal_entity_id)) for r in rows], at)


def one_by_one(entity_id: int, moments: list[datetime], to: str = N1, **fields) -> list:
    return [decide_at(entity_id, at, [to], **fields)[0] for at in moments]


def counts(scope: str, subject: str, at: datetime) -> dict[str, int]:
    with transaction() as conn:
        return limits.counts(conn, scope, subject, at, MSK)


# --- per person ---------------------------------------------------------------------------------------


def test_three_numbers_of_one_debtor_share_one_allowance(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    decisions = decide_at(entity.id, WEDNESDAY_NOON, [N1, N2, N3, N1, N2, N3], debtor="loan-1")
    assert kinds(decisions) == ["Allow", "Allow"] + ["Reject:fz_daily_limit"] * 4
    scope = f"e:{entity.id}"
    assert counts(scope, "d:loan-1", WEDNESDAY_NOON)["day"] == 2
    assert [counts(scope, n, WEDNESDAY_NOON)["day"] for n in (N1, N2, N3)] == [1, 1, 0]
    # another debtor has an allowance of their own, on another number
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N3], debtor="loan-2")) == ["Allow"]
    # the debtor's week carries over to another day
    thursday = WEDNESDAY_NOON + timedelta(days=1)
    assert kinds(decide_at(entity.id, thursday, [N3, N3, N3], debtor="loan-1")) == [
        "Allow",
        "Allow",
        "Reject:fz_weekly_limit",
    ]


def test_a_message_with_a_debtor_is_held_to_its_numbers_counts_too(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N1, N1], debtor="a")) == ["Allow", "Allow"]
    # N1 has had two today: neither another debtor nor no debtor gets a third SMS onto that handset
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N1], debtor="b")) == ["Reject:fz_daily_limit"]
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N1])) == ["Reject:fz_daily_limit"]
    # a message without a debtor counts only for its number
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N2, N2])) == ["Allow", "Allow"]
    assert counts(f"e:{entity.id}", "d:a", WEDNESDAY_NOON)["day"] == 2
    assert counts(f"e:{entity.id}", "d:b", WEDNESDAY_NOON)["day"] == 0


def test_release_uncounts_the_debtor_and_the_number(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_rolling_windows=True)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [N1], debtor="loan-1")
        assert policy.decide_many(conn, [(row, entity_row(conn, entity.id))], WEDNESDAY_NOON) == [
            policy.Allow()
        ]
    scope = f"e:{entity.id}"
    assert counts(scope, "d:loan-1", WEDNESDAY_NOON)["rolling_24h"] == 1
    with transaction() as conn:
        assert limits.release(conn, row.pk) is True
        assert limits.release(conn, row.pk) is False
    for subject in ("d:loan-1", N1):
        assert counts(scope, subject, WEDNESDAY_NOON) == dict.fromkeys(
            ("day", "week", "month", *rolling.ROLLING_KINDS), 0
        )
    # the next claim folds the releases into the counters and the minutes, under the locks
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N2, N2, N2], debtor="loan-1")) == [
        "Allow",
        "Allow",
        "Reject:fz_daily_limit",
    ]


def test_concurrent_claims_to_one_debtors_numbers_never_pass_the_limit_nor_deadlock(factory):
    """Twelve transactions at once, each deciding one message of one debtor, to three numbers, in
    batches that name the debtor and the number: exactly `per_day` are allowed, with no deadlock."""
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    with transaction() as conn:
        rows = new_messages(conn, entity.id, [N1, N2, N3] * 4, debtor="loan-1")
        ent = entity_row(conn, entity.id)
    results, errors = claim_each_at_once(rows, ent, WEDNESDAY_NOON)
    assert errors == []
    assert sorted(kinds(results)) == ["Allow"] * 2 + ["Reject:fz_daily_limit"] * 10
    assert counts(f"e:{entity.id}", "d:loan-1", WEDNESDAY_NOON)["day"] == 2


def test_the_lock_keys_of_a_message_with_a_debtor_are_the_debtors_and_the_numbers():
    from smsqueue.rules.subjects import subjects_of

    assert subjects_of(N1, "loan-1") == ("d:loan-1", N1)
    assert subjects_of(N1, None) == (N1,)
    assert subjects_of(None, "x") == ("d:x",)
    assert limits.lock_key("e:1", "d:loan-1") != limits.lock_key("e:1", N1)
    assert limits.lock_key("e:1", N1) != limits.lock_key("g:g1", N1)


# --- limit groups -------------------------------------------------------------------------------------


def test_entities_of_one_limit_group_share_the_counts(factory):
    creditor = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_limit_group="bank-1")
    agency = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_limit_group="bank-1")
    alone = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    assert kinds(decide_at(creditor.id, WEDNESDAY_NOON, [N1], debtor="d1")) == ["Allow"]
    assert kinds(decide_at(agency.id, WEDNESDAY_NOON, [N2], debtor="d1")) == ["Allow"]
    assert kinds(decide_at(creditor.id, WEDNESDAY_NOON, [N3], debtor="d1")) == ["Reject:fz_daily_limit"]
    assert kinds(decide_at(agency.id, WEDNESDAY_NOON, [N1])) == ["Allow"]  # N1: one so far in the group
    assert kinds(decide_at(agency.id, WEDNESDAY_NOON, [N1])) == ["Reject:fz_daily_limit"]
    # an entity outside the group counts alone
    assert kinds(decide_at(alone.id, WEDNESDAY_NOON, [N1, N1], debtor="d1")) == ["Allow", "Allow"]
    assert counts("g:bank-1", "d:d1", WEDNESDAY_NOON)["day"] == 2
    assert counts("g:bank-1", N1, WEDNESDAY_NOON)["day"] == 2


# --- rolling windows ----------------------------------------------------------------------------------


def test_a_message_at_2359_and_two_at_0001_the_calendar_allows_and_the_rolling_day_does_not(factory):
    calendar = factory.entity(**OPEN_ALL_DAY, fz_per_day=2)
    rolling_on = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_rolling_windows=True)
    moments = [msk(2026, 11, 24, 23, 59), msk(2026, 11, 25, 0, 1), msk(2026, 11, 25, 0, 1, 30)]
    assert kinds(one_by_one(calendar.id, moments)) == ["Allow", "Allow", "Allow"]
    assert kinds(one_by_one(rolling_on.id, moments)) == ["Allow", "Allow", "Reject:fz_daily_limit"]
    scope = f"e:{rolling_on.id}"
    assert counts(scope, N1, moments[-1]) == ONE_TODAY_TWO_IN_EACH_WINDOW


def test_the_rolling_day_frees_when_the_oldest_minute_has_left_it(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_rolling_windows=True)
    one_by_one(entity.id, [msk(2026, 11, 24, 23, 59, 10), msk(2026, 11, 25, 0, 1)])
    # 23:59:10 counts until 23:60 the next day (whole minutes: never a window over its limit)
    assert kinds(one_by_one(entity.id, [msk(2026, 11, 25, 23, 59, 59)])) == ["Reject:fz_daily_limit"]
    assert kinds(one_by_one(entity.id, [msk(2026, 11, 26, 0, 0)])) == ["Allow"]


def test_with_defer_a_message_waits_for_the_later_of_the_two_ends(factory):
    # The rolling day ends later than the calendar one: 10:00 + 24 h (+ its minute) is after midnight.
    both = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_on_limit="defer", fz_rolling_windows=True)
    calendar = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_on_limit="defer")
    moments = [msk(2026, 11, 25, 10, 0), msk(2026, 11, 25, 10, 1), msk(2026, 11, 25, 10, 2)]
    assert one_by_one(calendar.id, moments)[-1] == policy.Defer(msk(2026, 11, 26, 0, 0), "fz_daily_limit")
    assert one_by_one(both.id, moments)[-1] == policy.Defer(msk(2026, 11, 26, 10, 1), "fz_daily_limit")
    # The calendar day ends later than the rolling one: 23:59 yesterday leaves the window at 00:00.
    late = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_on_limit="defer", fz_rolling_windows=True)
    got = one_by_one(late.id, [msk(2026, 11, 24, 23, 59), msk(2026, 11, 25, 0, 1), msk(2026, 11, 25, 0, 2)])
    assert got[-1] == policy.Defer(msk(2026, 11, 26, 0, 0), "fz_daily_limit")


def test_the_rolling_week_has_the_weekly_reason(factory):
    # Sunday 2 and Monday 2: a new calendar week on Monday, but 4 within the rolling 7 days on Tuesday.
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_per_week=4, fz_rolling_windows=True)
    sunday, monday, tuesday = msk(2026, 11, 29, 10), msk(2026, 11, 30, 12), msk(2026, 12, 1, 14)
    assert kinds(one_by_one(entity.id, [sunday, sunday, monday, monday, tuesday])) == [
        "Allow",
        "Allow",
        "Allow",
        "Allow",
        "Reject:fz_weekly_limit",
    ]


def test_rolling_window_arithmetic_by_whole_minutes():
    day = rolling.SPANS["rolling_24h"]
    t0 = datetime(2026, 11, 24, 20, 59, tzinfo=UTC)
    minutes = {t0: 1, t0 + timedelta(minutes=2): 1}
    assert rolling.count_in(minutes, t0 + day, day) == 2  # the 20:59 minute has not ended 24 h ago
    assert rolling.count_in(minutes, t0 + day + timedelta(minutes=1), day) == 1
    assert rolling.count_in(minutes, t0 - timedelta(seconds=1), day) == 0  # later minutes do not count yet
    assert rolling.room_from(minutes, t0 + timedelta(minutes=3), day, 2) == t0 + day + timedelta(minutes=1)
    assert rolling.room_from(minutes, t0 + timedelta(minutes=3), day, 1) == t0 + day + timedelta(minutes=3)
    assert rolling.room_from(minutes, t0 + timedelta(minutes=3), day, 3) == t0 + timedelta(minutes=3)
    assert rolling.room_from(minutes, t0, day, 0) is None


def test_rolling_reads_minutes_by_key_range_and_purge_drops_old_minutes(factory):
    from sqlalchemy import text

    entity = factory.entity(**OPEN_ALL_DAY, fz_rolling_windows=True)
    scope = f"e:{entity.id}"
    old = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    with transaction() as conn:
        limits.add_minutes(
            conn, {(scope, f"+7916{n:07d}", old + timedelta(minutes=n)): 1 for n in range(2000)}
        )
        limits.add_minutes(conn, {(scope, N1, WEDNESDAY_NOON.astimezone(UTC)): 1})
    with transaction() as conn:
        conn.execute(text("ANALYZE fz_minutes"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        params = {"s": [scope], "u": [N1], "since": WEDNESDAY_NOON - rolling.LONGEST}
        plan = "\n".join(conn.execute(text("EXPLAIN " + limits._PG_READ_MINUTES.text), params).scalars())
    assert "pk_fz_minutes" in plan and "Seq Scan" not in plan and "messages" not in plan
    with transaction() as conn:
        assert limits.purge(conn, date(2026, 11, 25)) >= 2000
        left = conn.execute(text("SELECT count(*) FROM fz_minutes")).scalar_one()
    assert left == 1


# --- the strictest zone -------------------------------------------------------------------------------


def _strict(**fields) -> EntityRules:
    from test_rules_policy import rules

    return rules(**{"fz_unknown_zone": "strictest", **fields})


def _at(rules: EntityRules, at: datetime, to: str = N1, recipient_timezone: str | None = None):
    tz = recipient_zone(to, recipient_timezone, rules.timezone)
    zones = window_zones(to, recipient_timezone, rules.unknown_zone, tz)
    return decide(rules, at, tz, lambda _t: {}, zones=zones)


def test_strictest_allows_a_mobile_only_where_every_russian_zone_allows():
    """Send window 09:00-21:00 (FZ weekday hours 08-22): in every zone from Kaliningrad (UTC+2) to
    Kamchatka (UTC+12) only 07:00-09:00 UTC of a weekday is allowed."""
    strict = _strict()
    wednesday = datetime(2026, 11, 25, tzinfo=UTC)
    assert _at(strict, wednesday.replace(hour=6, minute=59)) == policy.Defer(
        wednesday.replace(hour=7), "outside_send_window"
    )
    assert _at(strict, wednesday.replace(hour=7)) == policy.Allow()
    assert _at(strict, wednesday.replace(hour=8, minute=59)) == policy.Allow()
    nxt = wednesday.replace(hour=9)
    assert _at(strict, nxt) == policy.Defer(nxt.replace(day=26, hour=7), "outside_send_window")
    # "entity" (the default) judges the same mobile in the entity's zone: 12:00 Moscow is fine
    assert _at(_strict(fz_unknown_zone="entity"), nxt) == policy.Allow()
    # a geographic number (one zone) and a recipient_timezone are judged in their own zone only
    assert _at(strict, nxt, to="+74951234567") == policy.Allow()
    assert _at(strict, nxt, recipient_timezone="Europe/Moscow") == policy.Allow()
    # with on_window reject, the minute outside is rejected
    assert _at(_strict(on_window="reject"), nxt) == policy.Reject("outside_send_window")


def test_strictest_with_no_minute_common_to_every_zone_rejects():
    # A 2-hour window cannot be open at once from UTC+2 to UTC+12.
    strict = _strict(send_window_from="10:00", send_window_to="12:00")
    assert _at(strict, datetime(2026, 11, 25, 8, tzinfo=UTC)) == policy.Reject("outside_send_window")


def test_strictest_in_the_policy_and_the_zones_of_a_mobile():
    from smsqueue.phones import number_timezones

    zones = number_timezones(N1)
    assert "Europe/Kaliningrad" in zones and "Asia/Kamchatka" in zones and "Asia/Almaty" not in zones
    assert number_timezones("+74951234567") == ("Europe/Moscow",)


def test_strictest_through_decide_many(factory):
    entity = factory.entity(
        send_window_from="09:00", send_window_to="21:00", fz_enabled=True, fz_unknown_zone="strictest"
    )
    at = datetime(2026, 11, 25, 6, 59, tzinfo=UTC)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [N1])
        got = policy.decide_many(conn, [(row, entity_row(conn, entity.id))], at)
    assert got == [policy.Defer(at.replace(hour=7, minute=0), "outside_send_window")]


# --- interactions made elsewhere ----------------------------------------------------------------------


def test_interactions_count_in_the_period_of_their_at(factory):
    entity = factory.entity(**OPEN_ALL_DAY, fz_per_day=2, fz_rolling_windows=True)
    tuesday_night = msk(2026, 11, 24, 23, 30)
    with transaction() as conn:
        ent = entity_row(conn, entity.id)
        for item in (
            interactions.Interaction(None, "loan-1", tuesday_night, "voice_message"),
            interactions.Interaction(N1, "loan-1", WEDNESDAY_NOON - timedelta(hours=1), "sms"),
        ):
            interactions.record(conn, ent, item, WEDNESDAY_NOON)
    scope = f"e:{entity.id}"
    assert counts(scope, "d:loan-1", WEDNESDAY_NOON) == ONE_TODAY_TWO_IN_EACH_WINDOW
    assert counts(scope, N1, WEDNESDAY_NOON)["day"] == 1
    # the calendar day has room for one more; the rolling day has none
    assert kinds(decide_at(entity.id, WEDNESDAY_NOON, [N2], debtor="loan-1")) == ["Reject:fz_daily_limit"]
    assert kinds(decide_at(entity.id, msk(2026, 11, 25, 23, 31), [N2], debtor="loan-1")) == ["Allow"]


def test_interaction_errors():
    now = WEDNESDAY_NOON
    assert [e.code for e in interactions.errors(interactions.Interaction(None, None, now, "sms"), now)] == [
        "required"
    ]
    future = interactions.Interaction(N1, None, now + timedelta(seconds=1), "sms")
    assert [(e.field, e.code) for e in interactions.errors(future, now)] == [("at", "in_future")]
    assert interactions.errors(interactions.Interaction(N1, None, now, "sms"), now) == []


def test_messages_remember_the_minute_they_were_counted_in(factory):
    entity = factory.entity(**OPEN_ALL_DAY)
    at = WEDNESDAY_NOON + timedelta(seconds=42)
    with transaction() as conn:
        (row,) = new_messages(conn, entity.id, [N1], debtor="x")
        policy.decide_many(conn, [(row, entity_row(conn, entity.id))], at)
        stored = conn.execute(
            select(messages_t.c.debtor, messages_t.c.fz_counted_on, messages_t.c.fz_counted_at).where(
                messages_t.c.pk == row.pk
            )
        ).one()
    assert tuple(stored) == ("x", date(2026, 11, 25), rolling.minute_of(at))


def test_debtors_groups_rolling_windows_and_interactions_on_sqlite(tmp_path):
    engine = sqlite_engine(tmp_path)
    try:
        with engine.begin() as conn:
            insert_sqlite_entity(conn, fz_rolling_windows=True, fz_limit_group="g1")
            ent = conn.execute(select(LegalEntity.__table__)).one()
            interactions.record(
                conn,
                ent,
                interactions.Interaction(None, "d1", msk(2026, 11, 24, 23, 59), "sms"),
                WEDNESDAY_NOON,
            )
            rows = new_messages(conn, 1, [N1, N2, N3], debtor="d1")
            at = msk(2026, 11, 25, 0, 1)
            assert kinds(policy.decide_many(conn, [(r, ent) for r in rows], at)) == [
                "Allow",
                "Reject:fz_daily_limit",
                "Reject:fz_daily_limit",
            ]
            assert limits.counts(conn, "g:g1", "d:d1", at, MSK)["rolling_24h"] == 2
            policy.release(conn, rows[0])
            assert limits.counts(conn, "g:g1", "d:d1", at, MSK)["rolling_24h"] == 1
            assert limits.counts(conn, "g:g1", N1, at, MSK)["day"] == 0
            more = new_messages(conn, 1, [N2], debtor="d1")
            assert kinds(policy.decide_many(conn, [(more[0], ent)], at)) == ["Allow"]
            assert limits.counts(conn, "g:g1", "d:d1", at, MSK)["rolling_24h"] == 2
    finally:
        engine.dispose()
