"""Rolling 24 h / 7 d / 30 d windows (`fz.rolling_windows`), answered from per-minute counts.

The counts of a (scope, subject) are kept per UTC minute (`fz_minutes`, only minutes that had a
message). A minute counts in a window until its *end* has left it: a message at 23:59:10 counts in the
rolling day until 23:60 the next day, so whole-minute counts never let a window hold more than its limit
(they may let the next message wait up to a minute longer than an exact clock would). Summing a 30-day
window reads at most the minutes that had a message in those 30 days, whatever the history's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from smsqueue.rules.periods import PeriodKind

RollingKind = Literal["rolling_24h", "rolling_7d", "rolling_30d"]
ROLLING_KINDS: tuple[RollingKind, ...] = get_args(RollingKind)
MINUTE = timedelta(minutes=1)
# Each rolling window, its length and the calendar period whose limit (and reason) it takes.
SPANS: dict[RollingKind, timedelta] = {
    "rolling_24h": timedelta(hours=24),
    "rolling_7d": timedelta(days=7),
    "rolling_30d": timedelta(days=30),
}
LIMIT_OF: dict[RollingKind, PeriodKind] = {"rolling_24h": "day", "rolling_7d": "week", "rolling_30d": "month"}
LONGEST = max(SPANS.values()) + MINUTE  # how far back a decision reads minutes
KEEP = timedelta(days=31)  # minutes older than this are never read again (purged)

Minutes = Mapping[datetime, int]  # the start of a UTC minute -> how many were counted in it


def minute_of(at: datetime) -> datetime:
    """The UTC minute containing `at`: the key of its `fz_minutes` row."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _inside(minutes: Minutes, at: datetime, span: timedelta) -> list[tuple[datetime, int]]:
    """The minutes (oldest first) that count in the window of `span` ending at `at`: those begun by
    `at` whose end is after `at - span`."""
    low = at - span - MINUTE
    return sorted((m, n) for m, n in minutes.items() if low < m <= at and n > 0)


def count_in(minutes: Minutes, at: datetime, span: timedelta) -> int:
    return sum(n for _, n in _inside(minutes, at, span))


def room_from(minutes: Minutes, at: datetime, span: timedelta, limit: int) -> datetime | None:
    """The first moment at or after `at` at which the window of `span` holds fewer than `limit`
    (no new message counted meanwhile): `at` itself, or the moment enough of the oldest minutes have
    left it. None when the limit is 0 (never room)."""
    if limit <= 0:
        return None
    inside = _inside(minutes, at, span)
    total = sum(n for _, n in inside)
    if total < limit:
        return at
    for minute, n in inside:
        total -= n
        if total < limit:
            return minute + MINUTE + span
    return at  # not reached: the loop ends with total 0 < limit


__all__ = [
    "LIMIT_OF",
    "LONGEST",
    "ROLLING_KINDS",
    "SPANS",
    "RollingKind",
    "count_in",
    "minute_of",
    "room_from",
]
