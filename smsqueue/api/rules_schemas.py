"""Request and response models of the legal-entities API (the rules service): entities, their sending
window and 230-FZ settings, their providers, and the check. Field errors carry our stable codes
(`smsqueue.errors.FieldCode`), with the JSON path of the field (`send_window.from`, `fz.per_week`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from smsqueue import law
from smsqueue.api.schemas import CallbackUrl, Debtor, IanaZone, MessageIn, Strict, Timestamp
from smsqueue.errors import FieldCode
from smsqueue.rules.inn import is_valid_inn
from smsqueue.rules.provider_settings import MASKED
from smsqueue.rules.subjects import LIMIT_GROUP_PATTERN, valid_limit_group
from smsqueue.rules.windows import WindowError, parse_hhmm

CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_CODE = re.compile(CODE_PATTERN)
MAX_LIMIT = 1_000_000  # a count per period; far above any law's number, below the integer column's range
MAX_PRIORITY = 1000
DEFAULT_TIMEZONE = "Europe/Moscow"
DEFAULT_RETENTION_DAYS = 548
MIN_RETENTION_DAYS = 31
MAX_RETENTION_DAYS = 36500

OnAction = Literal["defer", "reject"]
IdentificationMode = Literal["off", "require", "append"]
IDENTIFICATION_DOC = (
    "137-FZ: `off`; `require`: a message of an FZ-enabled entity whose text lacks `creditor_name` or "
    "`contact_phone` is 422 `missing_identification` (field `text`); `append`: "
    '"\\n<creditor_name>, <contact_phone>" is appended to a text that lacks either, before segment counting '
    "(the stored and sent text is the appended one; over 1600 characters then: `too_long`). Either needs "
    "both fields set on the entity (`identification_incomplete`, field `fz.identification`)."
)
UnknownZone = Literal["entity", "strictest"]
LIMIT_GROUP_DOC = (
    f"Entities with the same limit_group share one set of 230-FZ counts (per debtor and per number): a "
    f"creditor and the agency working its debts. {LIMIT_GROUP_PATTERN}; null (the default): the entity "
    "counts alone. Counts made before joining a group stay with the entity (they are not moved)."
)
ROLLING_DOC = (
    "When true, the limits must also hold over every rolling 24 hours (per_day), 7 days (per_week) and 30 "
    "days (per_month), judged by whole minutes, besides the calendar periods; the same reasons "
    "(fz_daily_limit, ...); with on_limit defer, the message waits for the later of the two ends."
)
UNKNOWN_ZONE_DOC = (
    "For a number with no single zone (a Russian mobile) and no recipient_timezone: `entity` judges the "
    "time rules in the entity's timezone; `strictest` allows a minute only when it is allowed in every "
    "zone the number may be in (for a Russian number: every Russian zone of the tz database). The FZ "
    "periods are counted in the entity's zone either way."
)


def check_limit_group(value: str | None) -> str | None:
    if value is not None and not valid_limit_group(value):
        raise PydanticCustomError(
            FieldCode.INVALID_VALUE,
            "1 to 64 lowercase Latin letters, digits, '-' and '_', starting with a letter or digit",
        )
    return value


def check_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise PydanticCustomError(
            FieldCode.INVALID_VALUE,
            "1 to 64 lowercase Latin letters, digits, '-' and '_', starting with a letter or digit",
        )
    return value


def check_hhmm(value: str) -> str:
    try:
        parse_hhmm(value)
    except WindowError as exc:
        raise PydanticCustomError(FieldCode.INVALID_TIME, str(exc)) from None
    return value


def check_inn(value: str | None) -> str | None:
    if value is not None and not is_valid_inn(value):
        raise PydanticCustomError(
            FieldCode.INVALID_INN, "not a valid INN: 10 or 12 digits with correct check digits"
        )
    return value


def check_sender(value: str | None) -> str | None:
    return MessageIn._sender(value)


# --- windows ------------------------------------------------------------------------------------------


class _WindowBase(Strict):
    """{"from": "HH:MM", "to": "HH:MM"}: from 00:00 to 24:00, `from` included, `to` excluded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", examples=["09:00"], description="HH:MM, 00:00 to 23:59; included.")
    to: str = Field(examples=["21:00"], description="HH:MM, 00:01 to 24:00; excluded.")

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        check_hhmm(value)
        if value == "24:00":
            raise PydanticCustomError(FieldCode.INVALID_TIME, "from may not be 24:00")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        return check_hhmm(value)

    def minutes(self) -> tuple[int, int]:
        return parse_hhmm(self.from_), parse_hhmm(self.to)

    @classmethod
    def of(cls, hours: tuple[str, str]) -> Self:
        return cls(**{"from": hours[0], "to": hours[1]})


class SendWindowIn(_WindowBase):
    """The standard sending window. A `from` after `to` runs across midnight (21:00-02:00); 00:00-24:00
    is all day; `from` equal to `to` is refused (`empty_window`)."""

    @model_validator(mode="after")
    def _not_empty(self) -> SendWindowIn:
        start, end = self.minutes()
        if start == end:
            raise PydanticCustomError(
                FieldCode.EMPTY_WINDOW, "from and to are equal: the window would be empty"
            )
        return self


class HoursIn(_WindowBase):
    """230-FZ hours of a kind of day: `from` must be before `to` (they may not cross midnight)."""

    @model_validator(mode="after")
    def _ordered(self) -> HoursIn:
        start, end = self.minutes()
        if start == end:
            raise PydanticCustomError(
                FieldCode.EMPTY_WINDOW, "from and to are equal: the hours would be empty"
            )
        if start > end:
            raise PydanticCustomError(
                FieldCode.CROSSES_MIDNIGHT, "FZ hours may not cross midnight: from must be before to"
            )
        return self


# --- 230-FZ settings ----------------------------------------------------------------------------------

_LIMIT_DOC = "Messages per recipient per local {}; a non-negative integer (0: none at all)."


def _limit_order(value: int | None, info: ValidationInfo, shorter: str) -> int | None:
    below = info.data.get(shorter)
    if value is not None and isinstance(below, int) and value < below:
        raise PydanticCustomError(
            FieldCode.LIMIT_BELOW_SHORTER_PERIOD, f"{info.field_name} must be at least {shorter}"
        )
    return value


class FzIn(Strict):
    """The 230-FZ settings as a whole: every field left out takes the law's default (shown)."""

    enabled: bool = Field(True, strict=True)
    per_day: int = Field(law.PER_DAY, ge=0, le=MAX_LIMIT, strict=True, description=_LIMIT_DOC.format("day"))
    per_week: int = Field(
        law.PER_WEEK,
        ge=0,
        le=MAX_LIMIT,
        strict=True,
        description=_LIMIT_DOC.format("week (Monday first)") + " >= per_day.",
    )
    per_month: int = Field(
        law.PER_MONTH,
        ge=0,
        le=MAX_LIMIT,
        strict=True,
        description=_LIMIT_DOC.format("calendar month") + " >= per_week.",
    )
    weekday_hours: HoursIn = Field(default_factory=lambda: HoursIn.of(law.WEEKDAY_HOURS))
    weekend_hours: HoursIn = Field(default_factory=lambda: HoursIn.of(law.WEEKEND_HOURS))
    holidays_as_weekends: bool = Field(
        True, strict=True, description="Public holidays (production calendar) take the weekend hours."
    )
    on_limit: OnAction = Field(
        "reject", description="At a limit: reject, or defer to the next period with room."
    )
    identification: IdentificationMode = Field("off", description=IDENTIFICATION_DOC)
    limit_group: str | None = Field(None, max_length=64, description=LIMIT_GROUP_DOC)
    rolling_windows: bool = Field(law.ROLLING_WINDOWS, strict=True, description=ROLLING_DOC)
    unknown_zone: UnknownZone = Field(law.UNKNOWN_ZONE, description=UNKNOWN_ZONE_DOC)  # type: ignore[assignment]

    @field_validator("limit_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return check_limit_group(value)

    @field_validator("per_week")
    @classmethod
    def _week(cls, value: int, info: ValidationInfo) -> int:
        return _limit_order(value, info, "per_day")  # type: ignore[return-value]

    @field_validator("per_month")
    @classmethod
    def _month(cls, value: int, info: ValidationInfo) -> int:
        return _limit_order(value, info, "per_week")  # type: ignore[return-value]


class FzPatch(Strict):
    """Some of the 230-FZ settings; the others keep their values. The limits are checked together
    with the stored ones (per_week >= per_day, per_month >= per_week)."""

    enabled: bool | None = Field(None, strict=True)
    per_day: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    per_week: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    per_month: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    weekday_hours: HoursIn | None = None
    weekend_hours: HoursIn | None = None
    holidays_as_weekends: bool | None = Field(None, strict=True)
    on_limit: OnAction | None = None
    identification: IdentificationMode | None = Field(None, description=IDENTIFICATION_DOC)
    limit_group: str | None = Field(None, max_length=64, description="null: leave the group.")
    rolling_windows: bool | None = Field(None, strict=True)
    unknown_zone: UnknownZone | None = None

    @field_validator("limit_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return check_limit_group(value)


# --- providers of an entity ---------------------------------------------------------------------------


class LinkIn(Strict):
    """Fields left out keep their value on an update; on an add, priority comes after the entity's last
    provider, sender is none and enabled is true."""

    priority: int | None = Field(
        None, ge=1, le=MAX_PRIORITY, strict=True, description="1 is tried first; ties go by age of the link."
    )
    sender: str | None = Field(
        None,
        description="Default sender name through this provider (1-11 Latin characters or up to 15 digits).",
    )
    enabled: bool | None = Field(None, strict=True, description="A disabled link is not used to send.")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return check_sender(value)


class LinkItemIn(LinkIn):
    provider: str = Field(max_length=64, description="Provider code.")


# --- entities -----------------------------------------------------------------------------------------


class _EntityFields(Strict):
    name: str | None = Field(None, min_length=1, max_length=300)
    inn: str | None = Field(
        None, description="10 digits (an organisation) or 12 (an individual entrepreneur), checksum included."
    )
    active: bool | None = Field(None, strict=True)
    timezone: IanaZone | None = Field(None, description="IANA zone, e.g. Europe/Moscow.")
    callback_url: CallbackUrl | None = Field(None, description="Default status webhook URL.")
    creditor_name: str | None = Field(
        None, min_length=1, max_length=300, description="137-FZ: the creditor (or representative) named."
    )
    contact_phone: str | None = Field(
        None, min_length=1, max_length=32, description="137-FZ: a phone to reach it, as it is to be shown."
    )
    retention_days: int | None = Field(
        None,
        strict=True,
        ge=MIN_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description=f"A final message is deleted (with its events and webhook attempts) this many days "
        f"after its last change; default {DEFAULT_RETENTION_DAYS} (137-FZ keeps texts about 1.5 years), "
        f"at least {MIN_RETENTION_DAYS} (the 230-FZ counts need a month). The FZ counts are not changed.",
    )

    @field_validator("inn")
    @classmethod
    def _inn(cls, value: str | None) -> str | None:
        return check_inn(value)


class EntityIn(_EntityFields):
    code: str = Field(max_length=64, description=f"Unique; {CODE_PATTERN}. Cannot change.")
    name: str | None = Field(None, min_length=1, max_length=300, description="Default: the code.")
    active: bool = Field(True, strict=True)
    timezone: IanaZone = Field(DEFAULT_TIMEZONE, description="IANA zone of the entity.")
    send_window: SendWindowIn = Field(
        default_factory=lambda: SendWindowIn(**{"from": "09:00", "to": "21:00"})
    )
    on_window: OnAction = Field(
        "defer", description="Outside the allowed time: defer to the next allowed minute."
    )
    fz: FzIn = Field(default_factory=FzIn)
    providers: list[LinkItemIn] | None = Field(None, max_length=50, description="Providers to link at once.")

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_code(value)


class EntityPatch(_EntityFields):
    """Only the fields given change. `null` clears `inn` and `callback_url`; other fields may not be null."""

    code: str | None = Field(None, description="May be given only with the entity's own code.")
    send_window: SendWindowIn | None = None
    on_window: OnAction | None = None
    fz: FzPatch | None = None
    providers: list[LinkItemIn] | None = Field(
        None, max_length=50, description="Replaces the entity's providers: those left out are unlinked."
    )
    webhook_secret: str | None = Field(
        None,
        description='Only "***" (as read) is accepted here; a new secret comes from POST .../webhook-secret.',
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and value != MASKED:
            raise PydanticCustomError(
                FieldCode.INVALID_VALUE, "the webhook secret is changed with POST .../webhook-secret"
            )
        return value


class EntityListQuery(Strict):
    active: bool | None = Field(None, description="Only active (true) or inactive (false) entities.")


class CheckQuery(Strict):
    to: str = Field(max_length=64, description="Recipient number, any common form.")
    at: Timestamp | None = Field(None, description="The moment to judge; default now. Past or future.")
    recipient_timezone: IanaZone | None = Field(
        None, description="IANA zone of the recipient (else the number's, else the entity's)."
    )
    debtor: Debtor | None = Field(
        None, description="The person the message would be about: `counts` are then the debtor's."
    )

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        return MessageIn._to(value)


# --- out ----------------------------------------------------------------------------------------------


class WindowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str


class FzOut(BaseModel):
    enabled: bool
    per_day: int
    per_week: int
    per_month: int
    weekday_hours: WindowOut
    weekend_hours: WindowOut
    holidays_as_weekends: bool
    on_limit: OnAction
    identification: IdentificationMode
    limit_group: str | None
    rolling_windows: bool
    unknown_zone: UnknownZone


class LinkOut(BaseModel):
    provider: str
    priority: int
    sender: str | None
    enabled: bool = Field(description="The link's own switch (the provider may be disabled on its own too).")


class LinkListOut(BaseModel):
    items: list[LinkOut]


class EntityOut(BaseModel):
    code: str
    name: str
    inn: str | None
    active: bool
    timezone: str
    callback_url: str | None
    creditor_name: str | None
    contact_phone: str | None
    webhook_secret: str = Field(description='In clear in the 201 of a creation only; "***" afterwards.')
    send_window: WindowOut
    on_window: OnAction
    fz: FzOut
    providers: list[LinkOut]
    retention_days: int


class EntityListOut(BaseModel):
    items: list[EntityOut]


class CountsOut(BaseModel):
    day: int
    week: int
    month: int
    rolling_24h: int = Field(description="Within the 24 hours ending at `at` (by whole minutes).")
    rolling_7d: int = Field(description="Within the 7 days ending at `at`.")
    rolling_30d: int = Field(description="Within the 30 days ending at `at`.")


class CheckOut(BaseModel):
    allowed: bool
    reasons: list[str] = Field(
        description="Every reason that applies: entity_inactive, provider_not_allowed, outside_send_window, "
        "fz_daily_limit, fz_weekly_limit, fz_monthly_limit."
    )
    next_allowed_at: datetime | None = Field(
        description="Null when allowed; else the first whole minute at or after `at` that the time rules "
        "allow (counts ignored), or null when none comes within 14 days."
    )
    counts: CountsOut
