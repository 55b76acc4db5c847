"""The rules' decision, in one place and free of the database: the send policy and the check endpoint
both judge through these functions, so what the check says is what the sender does.

Everything here takes the moment `at` explicitly (no clock is read) and the FZ counts as values or as a
function of a moment, so the decision is tested with any date and time without freezing a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smsqueue import law
from smsqueue.phones import PhoneError, number_timezone, number_timezones
from smsqueue.rules import rolling
from smsqueue.rules.periods import PERIOD_KINDS, next_period_start_utc
from smsqueue.rules.windows import NEXT_ALLOWED_HORIZON, TimePolicy, Window, is_allowed, next_allowed
from smsqueue.statuses import Reason

log = logging.getLogger(__name__)

DEFER = "defer"
REJECT = "reject"

LIMIT_REASONS: dict[str, str] = {
    "day": Reason.FZ_DAILY_LIMIT.value,
    "week": Reason.FZ_WEEKLY_LIMIT.value,
    "month": Reason.FZ_MONTHLY_LIMIT.value,
}
# A rolling window stops a message with its calendar period's reason (API.md: "the calendar one's").
LIMIT_REASONS.update({kind: LIMIT_REASONS[period] for kind, period in rolling.LIMIT_OF.items()})
STRICTEST = "strictest"
# How far a message deferred by the FZ counts may be moved: beyond the next month's start nothing
# more can open up (the periods only get longer), so this bounds a loop that cannot find room.
LIMIT_HORIZON = timedelta(days=64)
_MAX_STEPS = 64
FALLBACK_ZONE = "Europe/Moscow"

Counts = Mapping[str, int]  # period kind or rolling kind -> count
# (rolling kind, moment, limit) -> the first moment at or after it with room in that window (None: never)
RoomFrom = Callable[[str, datetime, int], datetime | None]


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


Decision = Allow | Defer | Reject


@dataclass(frozen=True, slots=True)
class EntityRules:
    """An entity's rules as the decision needs them (parsed once per distinct setting, then cached)."""

    active: bool
    timezone: str
    time_policy: TimePolicy
    on_window: str
    fz_enabled: bool
    # ("day", 2), ("week", 4), ("month", 16), shortest first; with rolling windows each calendar period is
    # followed by its rolling window ("rolling_24h", 2) and so on.
    limits: tuple[tuple[str, int], ...]
    on_limit: str
    rolling_windows: bool = False
    unknown_zone: str = law.UNKNOWN_ZONE

    @classmethod
    def of(cls, entity: Any) -> EntityRules:
        """From a `legal_entities` row (or the ORM object)."""
        return _rules(
            bool(entity.active),
            entity.timezone,
            entity.send_window_from,
            entity.send_window_to,
            entity.on_window,
            bool(entity.fz_enabled),
            int(entity.fz_per_day),
            int(entity.fz_per_week),
            int(entity.fz_per_month),
            entity.fz_weekday_from,
            entity.fz_weekday_to,
            entity.fz_weekend_from,
            entity.fz_weekend_to,
            bool(entity.fz_holidays_as_weekends),
            entity.fz_on_limit,
            bool(entity.fz_rolling_windows),
            entity.fz_unknown_zone,
        )


@lru_cache(maxsize=1024)
def _rules(
    active: bool,
    timezone: str,
    window_from: str,
    window_to: str,
    on_window: str,
    fz_enabled: bool,
    per_day: int,
    per_week: int,
    per_month: int,
    weekday_from: str,
    weekday_to: str,
    weekend_from: str,
    weekend_to: str,
    holidays_as_weekends: bool,
    on_limit: str,
    rolling_windows: bool,
    unknown_zone: str,
) -> EntityRules:
    policy = TimePolicy(
        send_window=Window.parse({"from": window_from, "to": window_to}, may_cross_midnight=True),
        fz_enabled=fz_enabled,
        weekday_hours=Window.parse({"from": weekday_from, "to": weekday_to}, may_cross_midnight=False),
        weekend_hours=Window.parse({"from": weekend_from, "to": weekend_to}, may_cross_midnight=False),
        holidays_as_weekends=holidays_as_weekends,
    )
    limits: tuple[tuple[str, int], ...] = (("day", per_day), ("week", per_week), ("month", per_month))
    if rolling_windows:
        by_period = dict(limits)
        limits = tuple(
            pair
            for period, limit in limits
            for pair in (
                (period, limit),
                *((k, by_period[p]) for k, p in rolling.LIMIT_OF.items() if p == period),
            )
        )
    return EntityRules(
        active=active,
        timezone=timezone,
        time_policy=policy,
        on_window=on_window,
        fz_enabled=fz_enabled,
        limits=limits,
        on_limit=on_limit,
        rolling_windows=rolling_windows,
        unknown_zone=unknown_zone,
    )


# --- the recipient's zone -----------------------------------------------------------------------------


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r ignored by the rules", name)
        return None


def recipient_zone(recipient: str, recipient_timezone: str | None, entity_timezone: str) -> ZoneInfo:
    """The zone the time rules and the FZ periods are judged in: the message's `recipient_timezone`,
    else the number's own zone when it has exactly one (a geographic number), else the entity's."""
    try:
        from_number = number_timezone(recipient)
    except PhoneError:
        from_number = None
    for name in (recipient_timezone, from_number, entity_timezone):
        found = _zone_or_none(name)
        if found is not None:
            return found
    return zone(FALLBACK_ZONE)


def window_zones(
    recipient: str, recipient_timezone: str | None, unknown_zone: str, tz: ZoneInfo
) -> tuple[ZoneInfo, ...]:
    """The zones the time rules are judged in: `tz` (the counting zone), except with `fz.unknown_zone`
    "strictest" for a number with no single zone and no `recipient_timezone`: every zone the number may
    be in (a minute is allowed only when it is allowed in each). The FZ periods are still counted in
    `tz` (the entity's zone then)."""
    if unknown_zone != STRICTEST or _zone_or_none(recipient_timezone) is not None:
        return (tz,)
    try:
        if number_timezone(recipient) is not None:
            return (tz,)
        names = number_timezones(recipient)
    except PhoneError:
        return (tz,)
    zones = tuple(z for z in (_zone_or_none(n) for n in names) if z is not None)
    return zones or (tz,)


# --- the pieces of a decision -------------------------------------------------------------------------

Zones = tuple[ZoneInfo, ...]


def time_allowed(rules: EntityRules, at: datetime, tz: ZoneInfo, zones: Zones | None = None) -> bool:
    return all(is_allowed(rules.time_policy, at.astimezone(z)) for z in zones or (tz,))


def next_allowed_in(
    rules: EntityRules, at: datetime, tz: ZoneInfo, zones: Zones | None = None
) -> datetime | None:
    """The first whole minute at or after `at` allowed in every zone (one zone: `windows.next_allowed`):
    each zone's next allowed minute from the latest found so far, until all agree."""
    zones = zones or (tz,)
    if len(zones) == 1:
        return next_allowed(rules.time_policy, at, zones[0])
    t = at
    for _ in range(_MAX_STEPS * 4):
        found = [next_allowed(rules.time_policy, t, z) for z in zones]
        if any(f is None for f in found):
            return None
        latest = max(f for f in found if f is not None)
        if latest == t or all(f == latest for f in found):
            return latest
        if latest - at > NEXT_ALLOWED_HORIZON:
            return None
        t = latest
    return None


def limits_reached(rules: EntityRules, counts: Counts) -> list[str]:
    """The periods whose count is at (or over) its limit, shortest first; none while FZ is off."""
    if not rules.fz_enabled:
        return []
    return [kind for kind, limit in rules.limits if counts.get(kind, 0) >= limit]


def limit_reason(reached: list[str]) -> str:
    """The reason for a message stopped by the counts: the longest period at its limit, as waiting out
    a shorter one would not help (a full week with a full day is `fz_weekly_limit`)."""
    return LIMIT_REASONS[reached[-1]]


def next_time_with_room(
    rules: EntityRules,
    at: datetime,
    tz: ZoneInfo,
    counts_at: Callable[[datetime], Counts],
    room_from: RoomFrom | None = None,
    zones: Zones | None = None,
) -> datetime | None:
    """The first moment at or after `at` at which every FZ count has room and the time rules allow
    sending: the start of the next period with room, then the next allowed minute from there (and
    again, if that minute lies in a period that is full too). None when a limit is 0 or nothing comes
    within LIMIT_HORIZON."""
    if any(limit <= 0 for _, limit in rules.limits) and rules.fz_enabled:
        return None
    t = at
    for _ in range(_MAX_STEPS):
        reached = limits_reached(rules, counts_at(t))
        if reached:
            ends = [_period_end(rules, kind, t, tz, room_from) for kind in reached]
            if any(end is None for end in ends):
                return None
            t = max(end for end in ends if end is not None)  # the later of the calendar and rolling ends
        else:
            allowed = next_allowed_in(rules, t, tz, zones)
            if allowed is None:
                return None
            if allowed == t:
                return t
            t = allowed  # judged again: the allowed minute may lie in a later, full, period
        if t - at > LIMIT_HORIZON:
            return None
    return None


def _period_end(
    rules: EntityRules, kind: str, t: datetime, tz: ZoneInfo, room_from: RoomFrom | None
) -> datetime | None:
    """When the full period `kind` stops holding a message back: a calendar period's end; for a rolling
    window, the moment its oldest minutes have left it (without `room_from`: a whole window on)."""
    if kind in PERIOD_KINDS:
        return next_period_start_utc(t, tz, kind)  # type: ignore[arg-type]
    if room_from is None:
        return t + rolling.SPANS[kind] + rolling.MINUTE  # type: ignore[index]
    found = room_from(kind, t, dict(rules.limits)[kind])
    # A window at its limit at `t` frees after `t`; never step back (the loop must move on).
    if found is None:
        return None
    return found if found > t else t + rolling.MINUTE


def decide(
    rules: EntityRules,
    at: datetime,
    tz: ZoneInfo,
    counts_at: Callable[[datetime], Counts],
    *,
    room_from: RoomFrom | None = None,
    zones: Zones | None = None,
) -> Decision:
    """Allow, defer or reject one message of an entity with `rules` to a recipient in `tz` at `at`.

    `counts_at(t)` gives the FZ counts of the periods containing `t` (as the policy will have counted
    them: with the messages before this one in the same batch). The order of the checks: an inactive
    entity is rejected; outside the allowed time, `on_window` decides (the counts are judged again when
    the deferred message comes back); at a limit, `on_limit` decides.
    """
    if not rules.active:
        return Reject(Reason.ENTITY_INACTIVE.value)
    if not time_allowed(rules, at, tz, zones):
        if rules.on_window == REJECT:
            return Reject(Reason.OUTSIDE_SEND_WINDOW.value)
        until = next_allowed_in(rules, at, tz, zones)
        if until is None:
            return Reject(Reason.OUTSIDE_SEND_WINDOW.value)
        return Defer(until, Reason.OUTSIDE_SEND_WINDOW.value)
    reached = limits_reached(rules, counts_at(at))
    if not reached:
        return Allow()
    reason = limit_reason(reached)
    if rules.on_limit == REJECT:
        return Reject(reason)
    until = next_time_with_room(rules, at, tz, counts_at, room_from, zones)
    return Reject(reason) if until is None else Defer(until, reason)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The check endpoint's answer (without the counts, which the caller has)."""

    allowed: bool
    reasons: list[str]
    next_allowed_at: datetime | None


def assess(
    rules: EntityRules,
    at: datetime,
    tz: ZoneInfo,
    counts: Counts,
    *,
    provider_allowed: bool = True,
    zones: Zones | None = None,
) -> Assessment:
    """Every reason that stops a message now (in a stable order: entity, provider, time, day, week,
    month), and, when there is one, the first whole minute at or after `at` that the time rules allow,
    ignoring the counts (None when none comes within 14 days)."""
    reasons: list[str] = []
    if not rules.active:
        reasons.append(Reason.ENTITY_INACTIVE.value)
    if not provider_allowed:
        reasons.append(Reason.PROVIDER_NOT_ALLOWED.value)
    if not time_allowed(rules, at, tz, zones):
        reasons.append(Reason.OUTSIDE_SEND_WINDOW.value)
    for kind in limits_reached(rules, counts):
        if LIMIT_REASONS[kind] not in reasons:  # a rolling window and its calendar period: one reason
            reasons.append(LIMIT_REASONS[kind])
    if not reasons:
        return Assessment(True, [], None)
    return Assessment(False, reasons, next_allowed_in(rules, at, tz, zones))


__all__ = [
    "LIMIT_REASONS",
    "PERIOD_KINDS",
    "Allow",
    "Assessment",
    "Decision",
    "Defer",
    "EntityRules",
    "Reject",
    "assess",
    "decide",
    "recipient_zone",
    "window_zones",
]
