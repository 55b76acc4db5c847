"""The rules of a message's fields, one place for the API's request models, the CSV rows of a job and
the ingest of templated texts. Each check raises pydantic's PydanticCustomError, whose type is our
field error code, so a model's validator and a row's check report the same code and message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from pydantic_core import PydanticCustomError

from smsqueue.clock import now
from smsqueue.errors import FieldCode

MAX_TEXT = 1600
MAX_DEBTOR = 128  # a debtor id (messages.debtor, the stop list's debtor entries)
MAX_SCHEDULE_AHEAD = timedelta(days=30)


# --- shared field types -------------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 with an offset, as a string; nothing else (no bare numbers, no naive times). Returned
    in UTC: the offset only says which instant is meant, and PostgreSQL refuses offsets beyond ±15:59
    that Python accepts (up to ±23:59), so a time is normalised before it goes anywhere."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                FieldCode.INVALID_DATETIME, "must be an ISO-8601 date and time with an offset"
            ) from None
    else:
        raise PydanticCustomError(FieldCode.INVALID_DATETIME, "must be an ISO-8601 string")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PydanticCustomError(FieldCode.INVALID_DATETIME, "must have a UTC offset, e.g. Z or +03:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is after the last instant Python holds
        raise PydanticCustomError(FieldCode.INVALID_DATETIME, "out of the range of dates") from None


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: str | None) -> str | None:
    if value is not None and value not in timezone_names():
        raise PydanticCustomError(FieldCode.INVALID_TIMEZONE, "not a known IANA time zone")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")  # one regex scan, not a Python step per character


def check_text(value: str) -> str:
    """The rules of a message's text (given, or rendered from a template)."""
    if not value:
        raise PydanticCustomError(FieldCode.TOO_SHORT, "must not be empty")
    if len(value) > MAX_TEXT:
        raise PydanticCustomError(FieldCode.TOO_LONG, f"at most {MAX_TEXT} characters")
    if _SURROGATE.search(value) is not None:
        raise PydanticCustomError(FieldCode.INVALID_VALUE, "contains an unpaired surrogate")
    return value


def check_send_at(value: datetime) -> datetime:
    current = now()
    if value < current:
        raise PydanticCustomError(FieldCode.IN_PAST, "must not be in the past")
    if value > current + MAX_SCHEDULE_AHEAD:
        raise PydanticCustomError(FieldCode.TOO_FAR_AHEAD, "at most 30 days ahead")
    return value


def check_valid_until(value: datetime, send_at: datetime | None) -> datetime:
    if value <= now():
        raise PydanticCustomError(FieldCode.IN_PAST, "must be in the future")
    if send_at is not None and value <= send_at:
        raise PydanticCustomError(FieldCode.INVALID_VALUE, "must be after send_at")
    return value
