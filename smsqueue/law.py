"""What Federal Law 230-FZ (art. 7) allows by default in messages to one person, when a legal entity has
not agreed otherwise: the one place these values are spelled (the columns' defaults, the API's defaults
and descriptions, the time rules)."""

from __future__ import annotations

# Messages to one recipient per local day, week (Monday first) and calendar month.
PER_DAY = 2
PER_WEEK = 4
PER_MONTH = 16
LIMITS = {"per_day": PER_DAY, "per_week": PER_WEEK, "per_month": PER_MONTH}

# Hours ("HH:MM" from, to) on working days, and on weekends and public holidays.
WEEKDAY_HOURS = ("08:00", "22:00")
WEEKEND_HOURS = ("09:00", "20:00")

# The law's defaults as the API's descriptions spell them.
LIMITS_TEXT = f"{PER_DAY}/{PER_WEEK}/{PER_MONTH}"
WEEKDAY_HOURS_TEXT = "-".join(WEEKDAY_HOURS)
WEEKEND_HOURS_TEXT = "-".join(WEEKEND_HOURS)

# Settings of issue 10 the law leaves to the creditor, and their defaults: the rolling 24 h / 7 d / 30 d
# windows off (the calendar periods alone, as most regulators read art. 7); a number with no single zone
# judged in the entity's zone ("entity") rather than in every zone it may be in ("strictest").
ROLLING_WINDOWS = False
UNKNOWN_ZONE = "entity"
