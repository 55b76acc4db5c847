"""The Russian production calendar: which dates are days off and which are working days.

The data is the `holidays` package's (its `RU` calendar lists public holidays, the days off the
government moves by decree and the days off added when a holiday falls on a weekend; Saturdays and
Sundays it turns into working days are in its `weekend_workdays`). For a year the package has no
decree for yet, only the fixed holidays are known: a transfer appears when the package is upgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import holidays

_SATURDAY = 5


@dataclass(frozen=True, slots=True)
class _YearCalendar:
    days_off: frozenset[date]  # public holidays and transferred days off, weekdays or not
    working_weekend_days: frozenset[date]  # Saturdays/Sundays made working days by decree


@lru_cache(maxsize=64)
def _year_calendar(year: int) -> _YearCalendar:
    # A decree may move a day off across the new year (a Saturday of year Y made a working day in
    # exchange for a day off in Y+1), and the package files such a move under the year that gains the
    # day off. Building the neighbouring years too catches those.
    ru = holidays.country_holidays("RU", years=(year - 1, year, year + 1))
    return _YearCalendar(
        days_off=frozenset(d for d in ru if d.year == year),
        working_weekend_days=frozenset(d for d in ru.weekend_workdays if d.year == year),
    )


def is_public_holiday(d: date) -> bool:
    """A public holiday or a day off of the production calendar (transferred days off included)."""
    return d in _year_calendar(d.year).days_off


def is_non_working_day(d: date) -> bool:
    """A day off in the production calendar: holidays, transferred days off and ordinary weekends,
    except the weekend days a decree makes working days."""
    year = _year_calendar(d.year)
    if d.weekday() >= _SATURDAY:
        return d not in year.working_weekend_days
    return d in year.days_off


def uses_weekend_hours(d: date, holidays_as_weekends: bool) -> bool:
    """Whether the FZ weekend hours apply on `d` (else the weekday hours).

    With `holidays_as_weekends` the production calendar decides (a working Saturday takes weekday
    hours, a transferred day off weekend hours); without it, Saturday and Sunday alone.
    """
    if holidays_as_weekends:
        return is_non_working_day(d)
    return d.weekday() >= _SATURDAY
