"""Times for the operator: shown in their zone, and read back from the form's local date and time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHOWN = "%d.%m.%Y %H:%M:%S"
INPUT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">


def shown(value: datetime | str | None, zone: ZoneInfo) -> str:
    """`02.12.2026 21:40:05` in the operator's zone; '' for none."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(zone).strftime(SHOWN)


def hour_label(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%H:%M")


def as_input(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime(INPUT)


def from_input(text: str, zone: ZoneInfo) -> datetime:
    """A datetime-local value (minutes, optionally seconds) in the operator's zone, as aware UTC.
    Raises ValueError for anything else."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
