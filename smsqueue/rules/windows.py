"""Time windows and the time rules: at which local minutes a message may go to its recipient.

A minute is allowed when its local time of day is inside the send window and, with the FZ rules on,
inside the FZ hours of its own local date's kind (weekday or weekend hours, see `calendar`). Times are
minutes of the day, 0..1440; a window includes its start and excludes its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from smsqueue import law
from smsqueue.rules.calendar import uses_weekend_hours
from smsqueue.rules.periods import first_instant_at_or_after, offset_change_between

MINUTES_PER_DAY = 24 * 60
NEXT_ALLOWED_HORIZON = timedelta(days=14)

# [0-9], not \d: \d also matches non-ASCII digits such as "٠٩".
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


class WindowError(ValueError):
    """A time or window the rules refuse.

    `code` is stable (API error bodies carry it): "invalid_time", "invalid_window", "empty_window" or
    "crosses_midnight"; `field` names the offending key ("from", "to", "weekday_hours", ...) if any.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field

    def __reduce__(self) -> tuple[type[WindowError], tuple[str, str], dict[str, str | None]]:
        # Exceptions unpickle as cls(*args); args holds only the message (workers pickle errors).
        return type(self), (self.code, str(self)), {"field": self.field}


def parse_hhmm(value: str) -> int:
    """Parse HH:MM: "09:00" -> 540, "24:00" -> 1440. Exactly two digits each side ("9:00" is refused)."""
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise WindowError("invalid_time", f"a time is HH:MM, got {value!r}")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes > 0):
        raise WindowError("invalid_time", f"a time is between 00:00 and 24:00, got {value!r}")
    return hours * 60 + minutes


def format_hhmm(minutes: int) -> str:
    if not 0 <= minutes <= MINUTES_PER_DAY:
        raise ValueError(f"minutes of the day are 0..{MINUTES_PER_DAY}, got {minutes}")
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in minutes of the day. start > end runs across midnight (22:00-02:00); an end of
    0 is midnight too (22:00-00:00 is 22:00-24:00)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < MINUTES_PER_DAY:
            raise WindowError("invalid_time", "from is 00:00..23:59", field="from")
        if not 0 <= self.end <= MINUTES_PER_DAY:
            raise WindowError("invalid_time", "to is 00:00..24:00", field="to")
        if self.start == self.end:
            raise WindowError("empty_window", "from and to are equal: the window would be empty")

    @classmethod
    def parse(cls, d: Mapping[str, str], *, may_cross_midnight: bool) -> Window:
        """{"from": "09:00", "to": "21:00"} -> Window(540, 1260). Other keys are refused."""
        if not isinstance(d, Mapping) or set(d) != {"from", "to"}:
            raise WindowError("invalid_window", 'a window is {"from": "HH:MM", "to": "HH:MM"}')
        start, end = _parse_field(d, "from"), _parse_field(d, "to")
        if start == MINUTES_PER_DAY:
            raise WindowError("invalid_time", "from may not be 24:00", field="from")
        window = cls(start, end)
        if window.crosses_midnight and not may_cross_midnight:
            raise WindowError("crosses_midnight", "this window may not cross midnight (from after to)")
        return window

    def to_dict(self) -> dict[str, str]:
        return {"from": format_hhmm(self.start), "to": format_hhmm(self.end)}

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, minute_of_day: int) -> bool:
        if self.crosses_midnight:
            return minute_of_day >= self.start or minute_of_day < self.end
        return self.start <= minute_of_day < self.end

    def day_pieces(self) -> tuple[tuple[int, int], ...]:
        """The window's [start, end) intervals within one calendar day: a window across midnight is
        the morning part (which belongs to the day after the evening it began) and the evening part."""
        if not self.crosses_midnight:
            return ((self.start, self.end),)
        morning = ((0, self.end),) if self.end > 0 else ()
        return (*morning, (self.start, MINUTES_PER_DAY))


def _parse_field(d: Mapping[str, str], key: str) -> int:
    try:
        return parse_hhmm(d[key])
    except WindowError as exc:
        raise WindowError(exc.code, f"{key}: {exc}", field=key) from None


DEFAULT_SEND_WINDOW = Window(9 * 60, 21 * 60)
DEFAULT_WEEKDAY_HOURS = Window(*map(parse_hhmm, law.WEEKDAY_HOURS))
DEFAULT_WEEKEND_HOURS = Window(*map(parse_hhmm, law.WEEKEND_HOURS))


@dataclass(frozen=True, slots=True)
class TimePolicy:
    send_window: Window
    fz_enabled: bool
    weekday_hours: Window
    weekend_hours: Window
    holidays_as_weekends: bool

    def __post_init__(self) -> None:
        for name in ("weekday_hours", "weekend_hours"):
            if getattr(self, name).crosses_midnight:
                raise WindowError("crosses_midnight", f"{name} may not cross midnight", field=name)

    def fz_hours_on(self, d: date) -> Window:
        return self.weekend_hours if uses_weekend_hours(d, self.holidays_as_weekends) else self.weekday_hours

    def allowed_intervals(self, d: date) -> tuple[tuple[int, int], ...]:
        """The allowed [start, end) minutes of local date `d`, in order (at most two)."""
        pieces = self.send_window.day_pieces()
        if self.fz_enabled:
            hours = self.fz_hours_on(d)
            pieces = tuple((max(a, hours.start), min(b, hours.end)) for a, b in pieces)
        return tuple((a, b) for a, b in pieces if a < b)


def is_allowed(policy: TimePolicy, local: datetime) -> bool:
    """Whether the minute containing `local` is allowed. Only its wall-clock date and time are read,
    so `local` must be in the recipient's zone. Seconds do not matter: a minute is allowed whole."""
    minute = local.hour * 60 + local.minute
    if not policy.send_window.contains(minute):
        return False
    return not policy.fz_enabled or policy.fz_hours_on(local.date()).contains(minute)


def next_allowed(
    policy: TimePolicy, at: datetime, tz: tzinfo, *, horizon: timedelta = NEXT_ALLOWED_HORIZON
) -> datetime | None:
    """The first whole minute at or after `at` that the time rules allow in the zone `tz`, in UTC;
    None when there is none by `at + horizon` (inclusive).

    `at` (aware, any zone) is first rounded up to a whole minute, so 08:00:30 gives 08:01 even when
    08:00 is allowed. Where the zone changes its offset, each instant is judged by the wall clock
    it shows: wall times skipped by a spring-forward gap never happen (a window starting inside the
    gap opens when the gap ends); wall times repeated when clocks go back are allowed at both
    occurrences, and the earlier one at or after `at` is returned.

    Not minute by minute: the allowed set can only begin at `at`, at the start of a day's allowed
    interval (either occurrence of that wall time) or where the offset changes, so only those
    instants are tried, a day at a time.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be an aware datetime")
    start = _ceil_to_minute(at.astimezone(UTC))
    limit = at.astimezone(UTC) + horizon
    if start > limit:
        return None
    if is_allowed(policy, start.astimezone(tz)):
        return start

    best: datetime | None = None
    # Begin a day early and stop a day after the day of the best find: where clocks go back across
    # midnight, a day's second-occurrence minutes come after the next day's first minutes.
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = limit.astimezone(tz).date()
    day_start = _day_start_utc(day, tz)
    while day <= last_day:
        next_day_start = _day_start_utc(day + timedelta(days=1), tz)
        for candidate in _entry_candidates(policy, day, day_start, next_day_start, tz):
            in_range = start <= candidate <= limit and (best is None or candidate < best)
            if in_range and is_allowed(policy, candidate.astimezone(tz)):
                best = candidate
        if best is not None and day > best.astimezone(tz).date():
            break
        day, day_start = day + timedelta(days=1), next_day_start
    return best


def _entry_candidates(
    policy: TimePolicy, day: date, day_start: datetime, next_day_start: datetime, tz: tzinfo
) -> Iterator[datetime]:
    """UTC instants, on whole minutes, where the allowed set may begin on local date `day`."""
    for a, _ in policy.allowed_intervals(day):
        wall = datetime.combine(day, time(a // 60, a % 60))
        # Both occurrences of a wall time repeated when clocks go back. Elsewhere both folds give
        # the same instant, except in a gap, where they give instants showing other wall times:
        # harmless, as every candidate is judged again by the wall time it really shows.
        yield wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        yield wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if day_start.astimezone(tz).utcoffset() != next_day_start.astimezone(tz).utcoffset():
        # The instant the offset changes: a window opening inside a spring-forward gap opens then,
        # and clocks going back may land inside an interval that began earlier. (Two changes within
        # one day that cancel out are not seen; no zone does that.)
        yield _ceil_to_minute(offset_change_between(day_start, next_day_start, tz))


def _day_start_utc(d: date, tz: tzinfo) -> datetime:
    return first_instant_at_or_after(datetime.combine(d, time()), tz)


def _ceil_to_minute(instant: datetime) -> datetime:
    floor = instant.replace(second=0, microsecond=0)
    return floor if floor == instant else floor + timedelta(minutes=1)
