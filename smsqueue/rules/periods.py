"""FZ counting periods (calendar day, week from Monday, month) in the recipient's local time.

Also the two local-time helpers the rules need where a zone changes its offset (daylight saving):
the first instant at or after a wall-clock time, and the instant an offset changes. Russia keeps no
daylight saving now, but a `recipient_timezone` may be any IANA zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal, get_args
from zoneinfo import ZoneInfo

PeriodKind = Literal["day", "week", "month"]
PERIOD_KINDS: tuple[PeriodKind, ...] = get_args(PeriodKind)


def period_start(local: datetime, kind: PeriodKind) -> datetime:
    """The first instant of the local day / week (Monday 00:00) / month containing `local`, in
    `local`'s zone. Where local midnight does not exist (a zone that springs forward at 00:00), the
    period starts at the first minute that does."""
    tz = _require_zone(local)
    start_date = _period_start_date(local.date(), kind)
    return first_instant_at_or_after(datetime.combine(start_date, time()), tz).astimezone(tz)


def period_bounds_utc(at: datetime, tz: ZoneInfo, kind: PeriodKind) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the period of `kind` that contains `at` in the zone `tz`."""
    start_date = _period_start_date(_local_date(at, tz), kind)
    end_date = _next_period_start_date(start_date, kind)
    return _local_date_start_utc(start_date, tz), _local_date_start_utc(end_date, tz)


def next_period_start_utc(at: datetime, tz: ZoneInfo, kind: PeriodKind) -> datetime:
    return period_bounds_utc(at, tz, kind)[1]


def period_keys(at: datetime, tz: ZoneInfo) -> dict[PeriodKind, date]:
    """The local date that names each period containing `at`: the day itself, its week's Monday and
    its month's first day (the keys of the counter rows)."""
    local_date = _local_date(at, tz)
    return {kind: _period_start_date(local_date, kind) for kind in PERIOD_KINDS}


def _period_start_date(d: date, kind: PeriodKind) -> date:
    if kind == "day":
        return d
    if kind == "week":
        return d - timedelta(days=d.weekday())
    if kind == "month":
        return d.replace(day=1)
    raise ValueError(f"unknown period kind: {kind!r}")


def _next_period_start_date(start: date, kind: PeriodKind) -> date:
    if kind == "day":
        return start + timedelta(days=1)
    if kind == "week":
        return start + timedelta(days=7)
    if kind == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    raise ValueError(f"unknown period kind: {kind!r}")


def _local_date(at: datetime, tz: ZoneInfo) -> date:
    _require_aware(at)
    return at.astimezone(tz).date()


def _local_date_start_utc(d: date, tz: tzinfo) -> datetime:
    return first_instant_at_or_after(datetime.combine(d, time()), tz)


def first_instant_at_or_after(wall: datetime, tz: tzinfo) -> datetime:
    """The earliest UTC instant whose local wall-clock time in `tz` is `wall` (naive), or, when
    `wall` falls in a gap (clocks moved forward over it), the instant the gap ends.

    A wall time that occurs twice (clocks moved back) gives its first occurrence.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    earlier, later = min(first, second), max(first, second)
    if _wall_clock(earlier, tz) == wall:
        return earlier
    if _wall_clock(later, tz) == wall:
        return later
    # In a gap, one fold maps before the change and the other after it, so the change lies between.
    return offset_change_between(earlier, later, tz)


def offset_change_between(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """The first whole second in (lo, hi] at which `tz` has `hi`'s UTC offset, given that it has
    another offset at `lo` and changes it once in between. A binary search: zoneinfo does not expose
    its transitions."""
    target = _offset_at(hi, tz)
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset_at(datetime.fromtimestamp(mid, UTC), tz) == target:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _offset_at(instant: datetime, tz: tzinfo) -> timedelta | None:
    return instant.astimezone(tz).utcoffset()


def _wall_clock(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("an aware datetime is required")


def _require_zone(local: datetime) -> tzinfo:
    tz = local.tzinfo
    if tz is None or local.utcoffset() is None:
        raise ValueError("an aware datetime is required")
    return tz
