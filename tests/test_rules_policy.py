"""The rules' decision at the edges, with explicit moments (a frozen clock without freezing anything):
the pure `rules.check` functions the send policy and the check endpoint share. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from smsqueue.rules.check import Allow, Defer, EntityRules, Reject, assess, decide, recipient_zone

MSK = ZoneInfo("Europe/Moscow")
VVO = ZoneInfo("Asia/Vladivostok")
MOBILE = "+79161234567"
VLADIVOSTOK_LANDLINE = "+74232123456"

# The law's defaults, as a new entity gets them (send window 09:00-21:00, FZ on, 2/4/16).
DEFAULTS = {
    "active": True,
    "timezone": "Europe/Moscow",
    "send_window_from": "09:00",
    "send_window_to": "21:00",
    "on_window": "defer",
    "fz_enabled": True,
    "fz_per_day": 2,
    "fz_per_week": 4,
    "fz_per_month": 16,
    "fz_weekday_from": "08:00",
    "fz_weekday_to": "22:00",
    "fz_weekend_from": "09:00",
    "fz_weekend_to": "20:00",
    "fz_holidays_as_weekends": True,
    "fz_on_limit": "reject",
    "fz_rolling_windows": False,
    "fz_unknown_zone": "entity",
}
ALL_DAY = {"send_window_from": "00:00", "send_window_to": "24:00"}


def rules(**changes) -> EntityRules:
    return EntityRules.of(SimpleNamespace(**{**DEFAULTS, **changes}))


def msk(*args) -> datetime:
    return datetime(*args, tzinfo=MSK)


def no_counts(_t: datetime) -> dict[str, int]:
    return {"day": 0, "week": 0, "month": 0}


def counts(day: int = 0, week: int = 0, month: int = 0):
    return lambda _t: {"day": day, "week": week, "month": month}


# --- the time rules ----------------------------------------------------------------------------------
# 2026-11-23..27 is Monday..Friday, 28/29 the weekend; 2026-11-04 (Wednesday) is Unity Day.


def test_weekday_0759_is_deferred_to_0800_and_0800_is_allowed():
    r = rules(**ALL_DAY)
    assert decide(r, msk(2026, 11, 25, 7, 59), MSK, no_counts) == Defer(
        msk(2026, 11, 25, 8, 0), "outside_send_window"
    )
    assert decide(r, msk(2026, 11, 25, 7, 59, 59), MSK, no_counts) == Defer(
        msk(2026, 11, 25, 8, 0), "outside_send_window"
    )
    assert decide(r, msk(2026, 11, 25, 8, 0), MSK, no_counts) == Allow()
    assert decide(r, msk(2026, 11, 25, 21, 59), MSK, no_counts) == Allow()
    assert decide(r, msk(2026, 11, 25, 22, 0), MSK, no_counts) == Defer(
        msk(2026, 11, 26, 8, 0), "outside_send_window"
    )


def test_saturday_2000_is_outside_the_weekend_hours_and_1959_is_inside():
    r = rules(**ALL_DAY)
    assert decide(r, msk(2026, 11, 28, 19, 59), MSK, no_counts) == Allow()
    assert decide(r, msk(2026, 11, 28, 20, 0), MSK, no_counts) == Defer(
        msk(2026, 11, 29, 9, 0), "outside_send_window"
    )
    # a Saturday morning at 08:30 is weekday-allowed but not weekend-allowed
    assert decide(r, msk(2026, 11, 28, 8, 30), MSK, no_counts) == Defer(
        msk(2026, 11, 28, 9, 0), "outside_send_window"
    )


def test_a_public_holiday_takes_the_weekend_hours_unless_told_otherwise():
    holiday_0830 = msk(2026, 11, 4, 8, 30)  # Unity Day, a Wednesday
    assert decide(rules(**ALL_DAY), holiday_0830, MSK, no_counts) == Defer(
        msk(2026, 11, 4, 9, 0), "outside_send_window"
    )
    assert decide(rules(**ALL_DAY), msk(2026, 11, 4, 20, 0), MSK, no_counts) == Defer(
        msk(2026, 11, 5, 8, 0), "outside_send_window"
    )
    assert decide(rules(**ALL_DAY, fz_holidays_as_weekends=False), holiday_0830, MSK, no_counts) == Allow()
    # the next working day is judged by weekday hours again
    assert decide(rules(**ALL_DAY), msk(2026, 11, 5, 8, 30), MSK, no_counts) == Allow()


def test_friday_2159_is_deferred_to_saturday_0900_with_the_default_settings():
    # 21:59 is inside the weekday FZ hours but after the 21:00 end of the default send window; the
    # next minute both allow is Saturday 09:00 (weekend hours start then).
    decision = decide(rules(), msk(2026, 11, 27, 21, 59), MSK, no_counts)
    assert decision == Defer(msk(2026, 11, 28, 9, 0), "outside_send_window")
    assert decision.until == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def test_a_send_window_across_midnight():
    night = rules(send_window_from="22:00", send_window_to="06:00", fz_enabled=False)
    assert decide(night, msk(2026, 11, 25, 23, 30), MSK, no_counts) == Allow()
    assert decide(night, msk(2026, 11, 26, 5, 59), MSK, no_counts) == Allow()
    assert decide(night, msk(2026, 11, 26, 6, 0), MSK, no_counts) == Defer(
        msk(2026, 11, 26, 22, 0), "outside_send_window"
    )
    assert decide(night, msk(2026, 11, 25, 21, 59), MSK, no_counts) == Defer(
        msk(2026, 11, 25, 22, 0), "outside_send_window"
    )


def test_a_window_across_midnight_meets_each_dates_own_fz_hours():
    # 20:00-09:00 with FZ on: 20:00-22:00 and 08:00-09:00 on weekdays; nothing on a weekend
    # (weekend hours 09:00-20:00 leave no overlap). Friday 22:30 -> Monday 08:00.
    r = rules(send_window_from="20:00", send_window_to="09:00")
    assert decide(r, msk(2026, 11, 27, 21, 0), MSK, no_counts) == Allow()
    assert decide(r, msk(2026, 11, 27, 22, 30), MSK, no_counts) == Defer(
        msk(2026, 11, 30, 8, 0), "outside_send_window"
    )
    assert decide(r, msk(2026, 11, 26, 7, 59), MSK, no_counts) == Defer(
        msk(2026, 11, 26, 8, 0), "outside_send_window"
    )
    assert decide(r, msk(2026, 11, 26, 8, 59), MSK, no_counts) == Allow()


def test_a_window_the_fz_hours_never_meet_rejects_even_with_defer():
    r = rules(send_window_from="23:00", send_window_to="06:00")  # FZ hours never reach the night
    assert decide(r, msk(2026, 11, 25, 23, 30), MSK, no_counts) == Reject("outside_send_window")


def test_on_window_reject():
    r = rules(on_window="reject")
    assert decide(r, msk(2026, 11, 25, 8, 30), MSK, no_counts) == Reject("outside_send_window")
    assert decide(r, msk(2026, 11, 25, 9, 0), MSK, no_counts) == Allow()


def test_fz_off_leaves_only_the_send_window():
    r = rules(**ALL_DAY, fz_enabled=False)
    assert decide(r, msk(2026, 11, 28, 23, 0), MSK, no_counts) == Allow()
    assert decide(r, msk(2026, 11, 28, 23, 0), MSK, counts(day=50, week=50, month=50)) == Allow()


# --- the recipient's zone ----------------------------------------------------------------------------


def test_a_recipient_in_vladivostok_while_the_entity_is_in_moscow():
    at = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)  # Wednesday 15:30 in Moscow, 22:30 in Vladivostok
    r = rules()
    assert recipient_zone(MOBILE, "Asia/Vladivostok", "Europe/Moscow") == VVO
    assert recipient_zone(VLADIVOSTOK_LANDLINE, None, "Europe/Moscow") == VVO  # the number's own zone
    assert recipient_zone(MOBILE, None, "Europe/Moscow") == MSK  # a mobile has no single zone
    assert recipient_zone(VLADIVOSTOK_LANDLINE, "Europe/Kaliningrad", "Europe/Moscow") == ZoneInfo(
        "Europe/Kaliningrad"
    )
    assert decide(r, at, MSK, no_counts) == Allow()
    # Thursday 09:00 in Vladivostok is Wednesday 23:00 UTC
    expected = Defer(datetime(2026, 11, 25, 23, 0, tzinfo=UTC), "outside_send_window")
    assert decide(r, at, recipient_zone(VLADIVOSTOK_LANDLINE, None, "Europe/Moscow"), no_counts) == expected
    assert decide(r, at, recipient_zone(MOBILE, "Asia/Vladivostok", "Europe/Moscow"), no_counts) == expected


def test_an_unknown_stored_zone_falls_back_to_the_next_one():
    assert recipient_zone(MOBILE, "Nowhere/Atlantis", "Asia/Vladivostok") == VVO
    assert recipient_zone(MOBILE, None, "Nowhere/Atlantis") == MSK


# --- the entity and the counts -----------------------------------------------------------------------


def test_an_inactive_entity_is_rejected_whatever_the_time():
    r = rules(active=False)
    assert decide(r, msk(2026, 11, 25, 12, 0), MSK, no_counts) == Reject("entity_inactive")
    assert decide(r, msk(2026, 11, 25, 3, 0), MSK, no_counts) == Reject("entity_inactive")


@pytest.mark.parametrize(
    ("day", "week", "month", "reason"),
    [
        (2, 2, 2, "fz_daily_limit"),
        (1, 4, 4, "fz_weekly_limit"),
        (0, 3, 16, "fz_monthly_limit"),
        (2, 4, 9, "fz_weekly_limit"),  # the longest period at its limit names it
        (2, 4, 16, "fz_monthly_limit"),
    ],
)
def test_at_a_limit_on_limit_reject_rejects_with_the_period(day, week, month, reason):
    assert decide(rules(), msk(2026, 11, 25, 12, 0), MSK, counts(day, week, month)) == Reject(reason)


def test_under_every_limit_is_allowed():
    assert decide(rules(), msk(2026, 11, 25, 12, 0), MSK, counts(1, 3, 15)) == Allow()


def test_limits_are_not_judged_outside_the_window():
    # Outside the time, the window decides; the counts are judged when the deferred message comes back.
    assert decide(rules(), msk(2026, 11, 25, 23, 0), MSK, counts(2, 2, 2)) == Defer(
        msk(2026, 11, 26, 9, 0), "outside_send_window"
    )


def by_period(day_counts: dict, week_counts: dict, month_counts: dict, tz=MSK):
    """counts_at for a calendar of counts: each dict maps a period's start date to its count."""

    def counts_at(t: datetime) -> dict[str, int]:
        d = t.astimezone(tz).date()
        monday = d - timedelta(days=d.weekday())
        return {
            "day": day_counts.get(d, 0),
            "week": week_counts.get(monday, 0),
            "month": month_counts.get(d.replace(day=1), 0),
        }

    return counts_at


def test_on_limit_defer_moves_to_the_next_day_then_to_the_first_allowed_minute():
    from datetime import date

    r = rules(fz_on_limit="defer")
    full_day = by_period({date(2026, 11, 25): 2}, {date(2026, 11, 23): 2}, {date(2026, 11, 1): 2})
    # Wednesday full -> Thursday 00:00 -> the window opens at 09:00
    assert decide(r, msk(2026, 11, 25, 12, 0), MSK, full_day) == Defer(
        msk(2026, 11, 26, 9, 0), "fz_daily_limit"
    )
    r_all_day = rules(fz_on_limit="defer", **ALL_DAY)
    # with an all-day window, the FZ weekday hours open Thursday at 08:00
    assert decide(r_all_day, msk(2026, 11, 25, 12, 0), MSK, full_day) == Defer(
        msk(2026, 11, 26, 8, 0), "fz_daily_limit"
    )
    # and with FZ hours all day too, it is the very start of the next local day
    r_open = rules(
        fz_on_limit="defer",
        **ALL_DAY,
        fz_weekday_from="00:00",
        fz_weekday_to="24:00",
        fz_weekend_from="00:00",
        fz_weekend_to="24:00",
    )
    assert decide(r_open, msk(2026, 11, 25, 12, 0), MSK, full_day) == Defer(
        msk(2026, 11, 26, 0, 0), "fz_daily_limit"
    )


def test_on_limit_defer_skips_periods_that_are_full_too():
    from datetime import date

    r = rules(fz_on_limit="defer")
    # Week full on Wednesday -> next Monday (Nov 30) at 09:00
    week_full = by_period({date(2026, 11, 25): 1}, {date(2026, 11, 23): 4}, {date(2026, 11, 1): 4})
    assert decide(r, msk(2026, 11, 25, 12, 0), MSK, week_full) == Defer(
        msk(2026, 11, 30, 9, 0), "fz_weekly_limit"
    )
    # Month full -> 1 December (a Tuesday) at 09:00
    month_full = by_period({}, {date(2026, 11, 23): 1}, {date(2026, 11, 1): 16})
    assert decide(r, msk(2026, 11, 25, 12, 0), MSK, month_full) == Defer(
        msk(2026, 12, 1, 9, 0), "fz_monthly_limit"
    )
    # Friday's day is full and so is Saturday's (counted ahead, e.g. from another zone): Sunday 09:00
    two_days = by_period(
        {date(2026, 11, 27): 2, date(2026, 11, 28): 2}, {date(2026, 11, 23): 3}, {date(2026, 11, 1): 3}
    )
    assert decide(r, msk(2026, 11, 27, 12, 0), MSK, two_days) == Defer(
        msk(2026, 11, 29, 9, 0), "fz_daily_limit"
    )
    # The day is full and the next day opens a full week: the Monday after it
    sunday_full = by_period({date(2026, 11, 29): 2}, {date(2026, 11, 23): 4, date(2026, 11, 30): 4}, {})
    assert decide(r, msk(2026, 11, 29, 12, 0), MSK, sunday_full) == Defer(
        msk(2026, 12, 7, 9, 0), "fz_weekly_limit"
    )


def test_on_limit_defer_with_a_zero_limit_rejects():
    r = rules(fz_on_limit="defer", fz_per_day=0)
    assert decide(r, msk(2026, 11, 25, 12, 0), MSK, no_counts) == Reject("fz_daily_limit")


def test_defer_by_limit_follows_the_recipients_local_day():
    from datetime import date

    # 12:30 UTC on Wednesday is 22:30 in Vladivostok: outside the window there, so it is deferred by the
    # window; at 01:00 UTC Thursday (11:00 there), a full Thursday moves it to Friday 09:00 there.
    r = rules(fz_on_limit="defer")
    full = by_period({date(2026, 11, 26): 2}, {date(2026, 11, 23): 2}, {date(2026, 11, 1): 2}, tz=VVO)
    at = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert decide(r, at, VVO, full) == Defer(datetime(2026, 11, 27, 9, 0, tzinfo=VVO), "fz_daily_limit")
    # the same counts judged in Moscow (Wednesday 04:00, outside the window there) defer by the window
    assert decide(r, at, MSK, full) == Defer(msk(2026, 11, 26, 9, 0), "outside_send_window")


# --- the check's assessment --------------------------------------------------------------------------


def test_assess_lists_every_reason_in_order_and_the_next_allowed_minute():
    r = rules(active=False)
    result = assess(
        r, msk(2026, 11, 25, 23, 0), MSK, {"day": 2, "week": 4, "month": 16}, provider_allowed=False
    )
    assert result.allowed is False
    assert result.reasons == [
        "entity_inactive",
        "provider_not_allowed",
        "outside_send_window",
        "fz_daily_limit",
        "fz_weekly_limit",
        "fz_monthly_limit",
    ]
    assert result.next_allowed_at == msk(2026, 11, 26, 9, 0)


def test_assess_allowed_has_no_next_allowed_and_counts_alone_give_the_next_whole_minute():
    r = rules()
    ok = assess(r, msk(2026, 11, 25, 12, 0), MSK, {"day": 1, "week": 1, "month": 1})
    assert (ok.allowed, ok.reasons, ok.next_allowed_at) == (True, [], None)
    full = assess(r, msk(2026, 11, 25, 12, 0, 30), MSK, {"day": 2, "week": 2, "month": 2})
    assert full.reasons == ["fz_daily_limit"]
    # the time rules allow 12:01 (the first whole minute at or after 12:00:30): counts are ignored
    assert full.next_allowed_at == msk(2026, 11, 25, 12, 1)
    exact = assess(r, msk(2026, 11, 25, 12, 0), MSK, {"day": 2, "week": 2, "month": 2})
    assert exact.next_allowed_at == msk(2026, 11, 25, 12, 0)


def test_assess_next_allowed_is_null_when_nothing_opens_within_14_days():
    r = rules(send_window_from="23:00", send_window_to="06:00")
    result = assess(r, msk(2026, 11, 25, 12, 0), MSK, {"day": 0, "week": 0, "month": 0})
    assert result.reasons == ["outside_send_window"]
    assert result.next_allowed_at is None


def test_assess_judges_a_past_moment_too():
    r = rules()
    result = assess(r, msk(2020, 1, 1, 12, 0), MSK, {"day": 0, "week": 0, "month": 0})  # a holiday
    assert result.allowed is True
    result = assess(r, msk(2020, 1, 1, 20, 30), MSK, {"day": 0, "week": 0, "month": 0})
    assert result.reasons == ["outside_send_window"]
    assert result.next_allowed_at == msk(2020, 1, 2, 9, 0)
