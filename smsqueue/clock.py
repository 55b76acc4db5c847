"""The one clock of the service: aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, to the millisecond: what is stored is exactly what the API shows (so a client
    can pass a time it was shown back as an exclusive bound, and JavaScript clients lose nothing)."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """API form of a time: UTC, seconds precision or finer, with a Z."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")
