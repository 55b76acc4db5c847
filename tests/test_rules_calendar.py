"""The production calendar as the `holidays` package (0.109) gives it, checked against the published
Russian production calendars for 2025 and 2026."""

from datetime import date, timedelta

import pytest

from smsqueue.rules.calendar import is_non_working_day, is_public_holiday, uses_weekend_hours


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _year(year: int) -> list[date]:
    return _days(date(year, 1, 1), date(year, 12, 31))


@pytest.mark.parametrize("d", _days(date(2025, 1, 1), date(2025, 1, 8)))
def test_new_year_holidays_2025_are_days_off(d: date) -> None:
    assert is_non_working_day(d)
    assert is_public_holiday(d)


def test_first_working_day_of_2025() -> None:
    assert not is_non_working_day(date(2025, 1, 9))
    assert not is_public_holiday(date(2025, 1, 9))


def test_saturday_1_november_2025_was_a_working_day() -> None:
    saturday = date(2025, 11, 1)
    assert saturday.weekday() == 5
    assert not is_non_working_day(saturday)
    assert not is_public_holiday(saturday)


def test_ordinary_weekend_is_non_working_but_not_a_holiday() -> None:
    sunday = date(2025, 11, 2)
    assert is_non_working_day(sunday)
    assert not is_public_holiday(sunday)


@pytest.mark.parametrize(
    "d",
    [
        date(2025, 5, 2),  # moved from Saturday 4 January
        date(2025, 5, 8),  # from Sunday 23 February
        date(2025, 6, 13),  # from Saturday 8 March
        date(2025, 11, 3),  # from Saturday 1 November, made a working day
        date(2025, 12, 31),  # from Sunday 5 January
    ],
)
def test_transferred_weekdays_off_2025(d: date) -> None:
    assert d.weekday() < 5
    assert is_non_working_day(d)
    assert is_public_holiday(d)


@pytest.mark.parametrize(
    "d",
    [
        *_days(date(2026, 1, 1), date(2026, 1, 11)),  # 9 January moved from Saturday 3 January
        date(2026, 2, 23),
        date(2026, 3, 9),  # 8 March is a Sunday
        date(2026, 5, 1),
        date(2026, 5, 11),  # 9 May is a Saturday
        date(2026, 6, 12),
        date(2026, 11, 4),
        date(2026, 12, 31),  # moved from Sunday 4 January
    ],
)
def test_days_off_2026(d: date) -> None:
    assert is_non_working_day(d)


@pytest.mark.parametrize("d", [date(2026, 1, 12), date(2026, 3, 10), date(2026, 5, 12), date(2026, 11, 5)])
def test_working_days_2026(d: date) -> None:
    assert not is_non_working_day(d)


def test_2026_has_no_working_weekend_days() -> None:
    assert all(is_non_working_day(d) for d in _year(2026) if d.weekday() >= 5)


@pytest.mark.parametrize(("year", "working_days"), [(2024, 248), (2025, 247), (2026, 247)])
def test_working_day_totals_match_the_production_calendar(year: int, working_days: int) -> None:
    assert sum(not is_non_working_day(d) for d in _year(year)) == working_days


@pytest.mark.parametrize(
    ("d", "calendar_on", "calendar_off"),
    [
        (date(2025, 11, 1), False, True),  # working Saturday: weekday hours only by the calendar
        (date(2025, 11, 3), True, False),  # transferred Monday off
        (date(2026, 11, 4), True, False),  # Unity Day, a Wednesday
        (date(2026, 11, 25), False, False),  # an ordinary Wednesday
        (date(2026, 11, 29), True, True),  # an ordinary Sunday
    ],
)
def test_uses_weekend_hours(d: date, calendar_on: bool, calendar_off: bool) -> None:
    assert uses_weekend_hours(d, holidays_as_weekends=True) is calendar_on
    assert uses_weekend_hours(d, holidays_as_weekends=False) is calendar_off
