from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from smsqueue.rules.periods import next_period_start_utc, period_bounds_utc, period_keys, period_start

MOSCOW = ZoneInfo("Europe/Moscow")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
BERLIN = ZoneInfo("Europe/Berlin")
HAVANA = ZoneInfo("America/Havana")  # springs forward at local midnight: 00:00 does not exist


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_period_keys_name_the_day_its_monday_and_its_month() -> None:
    at = datetime(2026, 11, 26, 12, 0, tzinfo=MOSCOW)  # a Thursday
    assert period_keys(at, MOSCOW) == {
        "day": date(2026, 11, 26),
        "week": date(2026, 11, 23),
        "month": date(2026, 11, 1),
    }


def test_period_keys_follow_the_recipients_date_not_utc() -> None:
    at = utc(2026, 11, 30, 22, 30)  # Monday in UTC, Tuesday 1 December 01:30 in Moscow
    assert period_keys(at, MOSCOW) == {
        "day": date(2026, 12, 1),
        "week": date(2026, 11, 30),
        "month": date(2026, 12, 1),
    }
    assert period_keys(at, ZoneInfo("UTC")) == {
        "day": date(2026, 11, 30),
        "week": date(2026, 11, 30),
        "month": date(2026, 11, 1),
    }


def test_sunday_belongs_to_the_week_that_began_on_monday() -> None:
    at = datetime(2026, 11, 29, 23, 59, tzinfo=MOSCOW)
    assert period_keys(at, MOSCOW)["week"] == date(2026, 11, 23)


def test_day_bounds_in_moscow() -> None:
    at = datetime(2026, 11, 26, 0, 0, tzinfo=MOSCOW)
    assert period_bounds_utc(at, MOSCOW, "day") == (utc(2026, 11, 25, 21), utc(2026, 11, 26, 21))


def test_week_bounds_run_monday_to_monday() -> None:
    at = datetime(2026, 11, 29, 23, 59, 59, tzinfo=MOSCOW)
    assert period_bounds_utc(at, MOSCOW, "week") == (utc(2026, 11, 22, 21), utc(2026, 11, 29, 21))


def test_december_ends_at_the_new_year() -> None:
    at = datetime(2026, 12, 15, 10, 0, tzinfo=VLADIVOSTOK)
    assert period_bounds_utc(at, VLADIVOSTOK, "month") == (utc(2026, 11, 30, 14), utc(2026, 12, 31, 14))
    assert next_period_start_utc(at, VLADIVOSTOK, "month") == utc(2026, 12, 31, 14)


def test_end_is_excluded_start_included() -> None:
    end = utc(2026, 11, 26, 21)  # Moscow midnight of 27 November
    assert period_bounds_utc(end, MOSCOW, "day")[0] == end
    just_before = end - timedelta(microseconds=1)
    assert period_bounds_utc(just_before, MOSCOW, "day")[1] == end


def test_next_period_start() -> None:
    at = datetime(2026, 11, 26, 12, 0, tzinfo=MOSCOW)
    assert next_period_start_utc(at, MOSCOW, "day") == utc(2026, 11, 26, 21)
    assert next_period_start_utc(at, MOSCOW, "week") == utc(2026, 11, 29, 21)
    assert next_period_start_utc(at, MOSCOW, "month") == utc(2026, 11, 30, 21)


def test_period_start_is_local_midnight_in_the_same_zone() -> None:
    local = datetime(2026, 11, 29, 23, 59, tzinfo=MOSCOW)
    assert period_start(local, "day") == datetime(2026, 11, 29, 0, 0, tzinfo=MOSCOW)
    week_start = period_start(local, "week")
    assert week_start == datetime(2026, 11, 23, 0, 0, tzinfo=MOSCOW)
    assert (week_start.tzinfo, week_start.hour) == (MOSCOW, 0)
    assert period_start(local, "month") == datetime(2026, 11, 1, 0, 0, tzinfo=MOSCOW)


def test_period_start_of_a_start_is_itself() -> None:
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=MOSCOW)
    assert period_start(monday, "week") == monday


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = period_bounds_utc(datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN), BERLIN, "day")
    autumn = period_bounds_utc(datetime(2026, 10, 25, 12, 0, tzinfo=BERLIN), BERLIN, "day")
    assert spring == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert autumn == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))


def test_a_day_without_midnight_starts_when_the_clocks_jump() -> None:
    # Cuba moves 2026-03-08 00:00 CST (-05:00) to 01:00 CDT (-04:00).
    at = datetime(2026, 3, 8, 12, 0, tzinfo=HAVANA)
    assert period_bounds_utc(at, HAVANA, "day") == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    start = period_start(at, "day")
    assert start == utc(2026, 3, 8, 5)
    assert (start.hour, start.minute) == (1, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        period_keys(datetime(2026, 11, 26, 12, 0), MOSCOW)
    with pytest.raises(ValueError):
        period_start(datetime(2026, 11, 26, 12, 0), "day")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        period_bounds_utc(utc(2026, 11, 26), MOSCOW, "year")  # type: ignore[arg-type]
