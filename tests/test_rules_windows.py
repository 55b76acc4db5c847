import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from smsqueue.rules.windows import (
    DEFAULT_WEEKDAY_HOURS,
    DEFAULT_WEEKEND_HOURS,
    TimePolicy,
    Window,
    WindowError,
    format_hhmm,
    is_allowed,
    next_allowed,
    parse_hhmm,
)

MOSCOW = ZoneInfo("Europe/Moscow")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
BERLIN = ZoneInfo("Europe/Berlin")

ALL_DAY = Window(0, 24 * 60)

# Fixed dates: Wednesday 2026-11-25, Thursday 26, Friday 27, Saturday 28, Sunday 29, Monday 30.
# Wednesday 2026-11-04 is Unity Day; Saturday 2025-11-01 was a working day.


def window(start: str, end: str) -> Window:
    return Window.parse({"from": start, "to": end}, may_cross_midnight=True)


def policy(
    send_window: Window = ALL_DAY,
    *,
    fz: bool = True,
    holidays_as_weekends: bool = True,
    weekday_hours: Window = DEFAULT_WEEKDAY_HOURS,
    weekend_hours: Window = DEFAULT_WEEKEND_HOURS,
) -> TimePolicy:
    return TimePolicy(send_window, fz, weekday_hours, weekend_hours, holidays_as_weekends)


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MOSCOW)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"), [("00:00", 0), ("09:00", 540), ("23:59", 1439), ("24:00", 1440)]
)
def test_parse_and_format_hhmm(text: str, minutes: int) -> None:
    assert parse_hhmm(text) == minutes
    assert format_hhmm(minutes) == text


@pytest.mark.parametrize(
    "text",
    [
        "25:00",
        "24:01",
        "09:60",
        "9:00",
        "09:0",
        "0900",
        "ab",
        "",
        " 09:00",
        "09:00 ",
        "\u0660\u0669:\u0660\u0660",
        "-1:00",
    ],
)
def test_parse_hhmm_refuses(text: str) -> None:
    with pytest.raises(WindowError) as error:
        parse_hhmm(text)
    assert error.value.code == "invalid_time"


def test_parse_hhmm_refuses_non_strings() -> None:
    with pytest.raises(WindowError) as error:
        parse_hhmm(900)  # type: ignore[arg-type]
    assert error.value.code == "invalid_time"


def test_window_parse_and_to_dict() -> None:
    parsed = Window.parse({"from": "09:00", "to": "21:00"}, may_cross_midnight=False)
    assert parsed == Window(540, 1260)
    assert parsed.to_dict() == {"from": "09:00", "to": "21:00"}
    assert not parsed.crosses_midnight


def test_all_day_window() -> None:
    all_day = Window.parse({"from": "00:00", "to": "24:00"}, may_cross_midnight=False)
    assert all_day == ALL_DAY
    assert all_day.contains(0) and all_day.contains(1439)
    assert all_day.to_dict() == {"from": "00:00", "to": "24:00"}


def test_window_includes_start_and_excludes_end() -> None:
    w = Window(540, 1260)
    assert [w.contains(m) for m in (539, 540, 1259, 1260)] == [False, True, True, False]


def test_window_across_midnight() -> None:
    night = Window.parse({"from": "22:00", "to": "02:00"}, may_cross_midnight=True)
    assert night.crosses_midnight
    inside = [night.contains(m) for m in (1319, 1320, 1439, 0, 119, 120)]
    assert inside == [False, True, True, True, True, False]
    assert night.to_dict() == {"from": "22:00", "to": "02:00"}


@pytest.mark.parametrize(
    ("value", "code", "field"),
    [
        ({"from": "25:00", "to": "21:00"}, "invalid_time", "from"),
        ({"from": "09:00", "to": "24:01"}, "invalid_time", "to"),
        ({"from": "24:00", "to": "09:00"}, "invalid_time", "from"),
        ({"from": "9:00", "to": "21:00"}, "invalid_time", "from"),
        ({"from": "09:00", "to": None}, "invalid_time", "to"),
        ({"from": "09:00", "to": "09:00"}, "empty_window", None),
        ({"from": "00:00", "to": "00:00"}, "empty_window", None),
        ({"from": "09:00"}, "invalid_window", None),
        ({"from": "09:00", "to": "21:00", "tz": "UTC"}, "invalid_window", None),
        ("09:00-21:00", "invalid_window", None),
    ],
)
def test_window_parse_errors(value: object, code: str, field: str | None) -> None:
    with pytest.raises(WindowError) as error:
        Window.parse(value, may_cross_midnight=True)  # type: ignore[arg-type]
    assert (error.value.code, error.value.field) == (code, field)


def test_window_error_survives_pickling() -> None:
    error = WindowError("invalid_time", "from: bad", field="from")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is WindowError
    assert (copy.code, copy.field, str(copy)) == ("invalid_time", "from", "from: bad")


def test_fz_hours_may_not_cross_midnight() -> None:
    with pytest.raises(WindowError) as error:
        Window.parse({"from": "22:00", "to": "08:00"}, may_cross_midnight=False)
    assert error.value.code == "crosses_midnight"
    # "to" 00:00 after a later "from" is a crossing window too.
    with pytest.raises(WindowError):
        Window.parse({"from": "22:00", "to": "00:00"}, may_cross_midnight=False)


def test_time_policy_refuses_fz_hours_across_midnight() -> None:
    with pytest.raises(WindowError) as error:
        policy(weekend_hours=window("20:00", "09:00"))
    assert (error.value.code, error.value.field) == ("crosses_midnight", "weekend_hours")


# --- is_allowed ----------------------------------------------------------------------------------


def test_weekday_fz_hours_start_at_eight() -> None:
    assert not is_allowed(policy(), msk(2026, 11, 25, 7, 59))
    assert is_allowed(policy(), msk(2026, 11, 25, 8, 0))


def test_friday_until_22_00_excluded() -> None:
    assert is_allowed(policy(), msk(2026, 11, 27, 21, 59))
    assert is_allowed(policy(), msk(2026, 11, 27, 21, 59, 59, 999999))
    assert not is_allowed(policy(), msk(2026, 11, 27, 22, 0))


def test_saturday_weekend_hours_end_excluded() -> None:
    assert not is_allowed(policy(), msk(2026, 11, 28, 8, 59))
    assert is_allowed(policy(), msk(2026, 11, 28, 9, 0))
    assert is_allowed(policy(), msk(2026, 11, 28, 19, 59))
    assert not is_allowed(policy(), msk(2026, 11, 28, 20, 0))


def test_public_holiday_takes_weekend_hours() -> None:
    unity_day = msk(2026, 11, 4, 8, 30)  # a Wednesday
    assert not is_allowed(policy(), unity_day)
    assert is_allowed(policy(), unity_day.replace(hour=9))
    assert not is_allowed(policy(), unity_day.replace(hour=20))
    assert is_allowed(policy(holidays_as_weekends=False), unity_day)


def test_working_saturday_takes_weekday_hours_only_by_the_calendar() -> None:
    working_saturday = msk(2025, 11, 1, 8, 30)
    assert is_allowed(policy(), working_saturday)
    assert not is_allowed(policy(holidays_as_weekends=False), working_saturday)


def test_send_window_applies_with_fz_off() -> None:
    p = policy(window("09:00", "21:00"), fz=False)
    assert not is_allowed(p, msk(2026, 11, 28, 8, 59))
    assert is_allowed(p, msk(2026, 11, 28, 20, 30))  # FZ weekend hours would refuse it
    assert not is_allowed(p, msk(2026, 11, 28, 21, 0))


def test_night_window_with_fz_off() -> None:
    p = policy(window("22:00", "02:00"), fz=False)
    assert not is_allowed(p, msk(2026, 11, 25, 21, 59))
    assert is_allowed(p, msk(2026, 11, 25, 22, 0))
    assert is_allowed(p, msk(2026, 11, 26, 1, 59))
    assert not is_allowed(p, msk(2026, 11, 26, 2, 0))


def test_after_midnight_part_of_a_night_window_meets_the_next_days_fz_hours() -> None:
    # 21:00-09:00 with default FZ hours: 21:00-22:00 and 08:00-09:00 on working days, nothing on
    # weekends. Friday night's window runs into Saturday, whose hours begin at 09:00.
    p = policy(window("21:00", "09:00"))
    assert is_allowed(p, msk(2026, 11, 27, 21, 30))  # Friday evening
    assert not is_allowed(p, msk(2026, 11, 27, 22, 0))
    assert not is_allowed(p, msk(2026, 11, 28, 8, 30))  # Saturday morning
    assert is_allowed(p, msk(2026, 11, 30, 8, 30))  # Monday morning, after Sunday night


# --- next_allowed --------------------------------------------------------------------------------


def test_next_allowed_of_an_allowed_whole_minute_is_itself() -> None:
    at = msk(2026, 11, 27, 21, 59)
    assert next_allowed(policy(), at, MOSCOW) == utc(2026, 11, 27, 18, 59)


def test_result_is_in_utc() -> None:
    result = next_allowed(policy(), msk(2026, 11, 27, 22, 0), MOSCOW)
    assert result is not None and result.utcoffset() == timedelta(0)


def test_friday_22_00_defers_to_saturday_09_00() -> None:
    assert next_allowed(policy(), msk(2026, 11, 27, 22, 0), MOSCOW) == msk(2026, 11, 28, 9, 0)


def test_default_policy_after_saturday_hours_goes_to_sunday() -> None:
    p = policy(window("09:00", "21:00"))
    assert next_allowed(p, msk(2026, 11, 28, 20, 0), MOSCOW) == msk(2026, 11, 29, 9, 0)


def test_at_not_on_a_whole_minute_is_rounded_up() -> None:
    assert next_allowed(policy(), msk(2026, 11, 25, 10, 15, 30), MOSCOW) == msk(2026, 11, 25, 10, 16)
    # Inside the last allowed minute, but its next whole minute is not allowed.
    assert next_allowed(policy(), msk(2026, 11, 27, 21, 59, 0, 1), MOSCOW) == msk(2026, 11, 28, 9, 0)
    assert next_allowed(policy(), msk(2026, 11, 28, 8, 59, 59, 999999), MOSCOW) == msk(2026, 11, 28, 9, 0)


def test_at_in_the_past() -> None:
    # 2020-01-01..08 were days off: weekend hours 09:00-20:00.
    p = policy(window("09:00", "21:00"))
    assert next_allowed(p, msk(2020, 1, 1, 12, 0), MOSCOW) == msk(2020, 1, 1, 12, 0)
    assert next_allowed(p, msk(2020, 1, 1, 20, 30), MOSCOW) == msk(2020, 1, 2, 9, 0)


def test_recipient_zone_decides_not_the_zone_of_at() -> None:
    # 15:30 in Moscow is 22:30 in Vladivostok: too late there on a Thursday.
    at = msk(2026, 11, 26, 15, 30)
    assert is_allowed(policy(), at)
    result = next_allowed(policy(), at, VLADIVOSTOK)
    assert result == datetime(2026, 11, 27, 8, 0, tzinfo=VLADIVOSTOK)
    assert result == utc(2026, 11, 26, 22, 0)


def test_night_window_next_allowed() -> None:
    p = policy(window("22:00", "02:00"), fz=False)
    assert next_allowed(p, msk(2026, 11, 26, 2, 0), MOSCOW) == msk(2026, 11, 26, 22, 0)
    assert next_allowed(p, msk(2026, 11, 26, 1, 59), MOSCOW) == msk(2026, 11, 26, 1, 59)


def test_night_window_with_fz_waits_for_a_weekday_morning() -> None:
    p = policy(window("21:00", "09:00"))
    assert next_allowed(p, msk(2026, 11, 27, 22, 0), MOSCOW) == msk(2026, 11, 30, 8, 0)


def test_none_when_the_window_never_meets_the_fz_hours() -> None:
    p = policy(window("23:00", "24:00"))
    assert next_allowed(p, msk(2026, 11, 25, 12, 0), MOSCOW) is None


def test_new_year_holidays_and_the_horizon() -> None:
    # 21:00-22:00 only meets weekday hours; 2026-01-01..11 are days off, so 31 December 22:00 waits
    # 11 days and 23 hours.
    p = policy(window("21:00", "22:00"))
    at = msk(2025, 12, 31, 22, 0)
    expected = msk(2026, 1, 12, 21, 0)
    assert next_allowed(p, at, MOSCOW) == expected
    assert next_allowed(p, at, MOSCOW, horizon=expected - at) == expected
    assert next_allowed(p, at, MOSCOW, horizon=expected - at - timedelta(minutes=1)) is None


def test_naive_at_is_refused() -> None:
    with pytest.raises(ValueError):
        next_allowed(policy(), datetime(2026, 11, 25, 12, 0), MOSCOW)


# Berlin: 2026-03-29 (Sunday) 02:00 CET -> 03:00 CEST; 2026-10-25 (Sunday) 03:00 CEST -> 02:00 CET.


def test_dst_gap_window_opening_inside_the_gap_opens_when_it_ends() -> None:
    p = policy(window("02:30", "04:00"), fz=False)
    at = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert next_allowed(p, at, BERLIN) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_dst_gap_window_wholly_inside_the_gap_is_skipped() -> None:
    p = policy(window("02:00", "03:00"), fz=False)
    at = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert next_allowed(p, at, BERLIN) == utc(2026, 3, 30, 0, 0)  # 02:00 CEST the next day


def test_fz_hours_on_a_dst_day_use_the_new_offset() -> None:
    at = datetime(2026, 3, 28, 21, 0, tzinfo=BERLIN)  # Saturday, after weekend hours
    assert next_allowed(policy(), at, BERLIN) == utc(2026, 3, 29, 7, 0)  # Sunday 09:00 CEST


def test_repeated_hour_gives_the_first_occurrence_at_or_after() -> None:
    p = policy(window("02:30", "02:45"), fz=False)
    assert next_allowed(p, utc(2026, 10, 25, 0, 0), BERLIN) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert next_allowed(p, utc(2026, 10, 25, 0, 50), BERLIN) == utc(2026, 10, 25, 1, 30)  # 02:30 CET


def test_clocks_going_back_into_an_open_window() -> None:
    # At 02:50 CEST the window 01:00-02:45 is closed; at 03:00 CEST the clocks show 02:00 again.
    p = policy(window("01:00", "02:45"), fz=False)
    assert next_allowed(p, utc(2026, 10, 25, 0, 50), BERLIN) == utc(2026, 10, 25, 1, 0)


# --- against a minute-by-minute reference ---------------------------------------------------------

# Each zone around one of its awkward instants: its 2026 offset changes (Lord Howe moves by 30
# minutes), the start of the New Year holidays and of a working Saturday.
_HAVANA = ZoneInfo("America/Havana")
_LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
_CASES = [
    (BERLIN, utc(2026, 3, 29, 1)),
    (BERLIN, utc(2026, 10, 25, 1)),
    (_HAVANA, utc(2026, 3, 8, 5)),
    (_HAVANA, utc(2026, 11, 1, 5)),
    (_LORD_HOWE, utc(2026, 4, 4, 15)),
    (_LORD_HOWE, utc(2026, 10, 3, 15, 30)),
    (MOSCOW, utc(2025, 12, 31, 21)),
    (VLADIVOSTOK, utc(2025, 10, 31, 14)),
]
_WINDOWS = [
    ("00:00", "24:00"),
    ("09:00", "21:00"),
    ("21:00", "09:00"),
    ("01:30", "02:30"),
    ("23:00", "00:30"),
]


def _brute_force(p: TimePolicy, at: datetime, tz: ZoneInfo, horizon: timedelta) -> datetime | None:
    minute = at.astimezone(UTC).replace(second=0, microsecond=0)
    if minute < at:
        minute += timedelta(minutes=1)
    while minute <= at + horizon:
        if is_allowed(p, minute.astimezone(tz)):
            return minute
        minute += timedelta(minutes=1)
    return None


@pytest.mark.parametrize(("tz", "instant"), _CASES, ids=str)
@pytest.mark.parametrize("send_window", _WINDOWS, ids="-".join)
@pytest.mark.parametrize("fz", [False, True])
def test_next_allowed_matches_a_minute_by_minute_search(
    tz: ZoneInfo, instant: datetime, send_window: tuple[str, str], fz: bool
) -> None:
    p = policy(window(*send_window), fz=fz)
    horizon = timedelta(hours=26)
    for offset in range(-4 * 60, 4 * 60, 23):  # every 23 minutes and a few seconds, either side
        at = instant + timedelta(minutes=offset, seconds=offset % 7)
        assert next_allowed(p, at, tz, horizon=horizon) == _brute_force(p, at, tz, horizon), at
