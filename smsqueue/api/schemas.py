"""Request and response models of the messages API. They validate requests and make the OpenAPI
document (one source of truth). Validators raise errors whose type is our field error code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from smsqueue.errors import FieldCode, FieldError
from smsqueue.message_fields import (  # noqa: F401 - the API's models and views take them from here too
    MAX_DEBTOR,
    MAX_SCHEDULE_AHEAD,
    MAX_TEXT,
    check_send_at,
    check_text,
    check_timezone,
    check_valid_until,
    parse_timestamp,
    timezone_names,
)
from smsqueue.phones import PhoneError, normalize_phone
from smsqueue.statuses import Status
from smsqueue.urls import UrlError, check_callback_url

Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]


def check_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_callback_url(value)
    except UrlError as exc:
        code = FieldCode.CALLBACK_URL_NOT_ALLOWED if exc.code == "callback_url_not_allowed" else exc.code
        raise PydanticCustomError(str(code), str(exc)) from None


# Field types shared by the request models, each with its check.
IanaZone = Annotated[str, Field(max_length=64, examples=["Europe/Moscow"]), AfterValidator(check_timezone)]
CallbackUrl = Annotated[str, Field(max_length=2048), AfterValidator(check_url)]
# The caller's id of a person (230-FZ counts per person): any text, compared exactly (case and spaces kept).
Debtor = Annotated[str, Field(min_length=1, max_length=MAX_DEBTOR, examples=["loan-2024-0001"])]
DEBTOR_DOC = (
    "The caller's id of the person the message is about, 1 to 128 characters, compared exactly. 230-FZ "
    "counts then apply to that person across all of their numbers (per limit scope: the entity, or its "
    "fz.limit_group); the message is held to the debtor's counts and to its number's."
)


def _has_nul(value: Any) -> bool:
    """A NUL character in a string, or in the strings of a list or a mapping (not in a list of
    objects: a batch's items are checked one by one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(isinstance(v, str) and "\x00" in v for v in value)
    return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail on insert.
        if _has_nul(value):
            raise PydanticCustomError(FieldCode.INVALID_VALUE, "must not contain NUL characters")
        return value


# --- messages in --------------------------------------------------------------------------------------


class MessageIn(Strict):
    legal_entity: str | None = Field(
        None, max_length=64, description="Entity code; may be left out when the key is bound to one entity."
    )
    to: str = Field(
        max_length=64,
        description="Recipient; any common form (+79161234567, 89161234567, 8 (916) 123-45-67), stored as "
        "E.164. Russian numbers only (the service sends under Russian law): others are invalid_phone.",
    )
    template: str | None = Field(
        None,
        max_length=64,
        description="A template code of the entity, instead of `text`: rendered with `variables` when the "
        "message is accepted (the message keeps the rendered text).",
    )
    text: str | None = Field(
        None,
        validate_default=True,
        description=f"1 to {MAX_TEXT} characters. Required unless `template` is given; not with it.",
    )
    sender: str | None = Field(None, description="Sender name; default from the entity's provider link.")
    provider: str | None = Field(
        None, max_length=64, description="Provider code; must be linked to the entity."
    )
    send_at: Timestamp | None = Field(None, description="Not before this time; at most 30 days ahead.")
    valid_until: Timestamp | None = Field(None, description="After this, an unsent message becomes expired.")
    recipient_timezone: IanaZone | None = Field(None, description="IANA zone of the recipient.")
    callback_url: CallbackUrl | None = Field(None, description="http(s) URL for status webhooks.")
    reference: str | None = Field(
        None, max_length=128, description="The caller's own id, echoed in webhooks."
    )
    variables: dict[str, str] | None = Field(
        None,
        description="Values of the template's placeholders: every placeholder needs one (else "
        "missing_variable), and a name the template lacks is unknown_variable.",
    )
    debtor: Debtor | None = Field(None, description=DEBTOR_DOC)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        try:
            return normalize_phone(value)
        except PhoneError as exc:
            raise PydanticCustomError(
                FieldCode.INVALID_PHONE, str(exc) or "not a valid phone number"
            ) from None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_template = info.data.get("template") is not None or "template" not in info.data
        if value is None:
            if has_template:
                return None  # rendered from the template once the entity is known
            raise PydanticCustomError(FieldCode.REQUIRED, "give `text` or a `template`")
        if info.data.get("template") is not None:
            raise PydanticCustomError(FieldCode.INVALID_VALUE, "give `text` or a `template`, not both")
        return check_text(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if value is not None and info.data.get("template") is None and "template" in info.data:
            raise PydanticCustomError(FieldCode.INVALID_VALUE, "variables are for a `template`")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value[1:] if value.startswith("+") else value
        if digits.isdigit() and digits.isascii() and 1 <= len(digits) <= 15:
            return value
        if 1 <= len(value) <= 11 and value.isascii() and all(ch.isalnum() or ch in " ._-&" for ch in value):
            return value
        raise PydanticCustomError(
            FieldCode.INVALID_SENDER, "1-11 Latin letters, digits or ' ._-&', or up to 15 digits"
        )

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_send_at(value)

    @field_validator("valid_until")
    @classmethod
    def _valid_until(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else check_valid_until(value, info.data.get("send_at"))


class BatchItemIn(MessageIn):
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class BatchIn(Strict):
    messages: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="1 to 1000 messages, each as in POST /api/v1/messages, with an optional idempotency_key.",
        # Any object is taken: an invalid item is reported in its result (200), not refused with the batch.
        json_schema_extra={
            "items": {"anyOf": [{"$ref": "#/components/schemas/BatchItemIn"}, {"type": "object"}]}
        },
    )


class MessageListQuery(Strict):
    legal_entity: str | None = Field(None, max_length=64)
    status: list[Status] | None = Field(None, description="Repeatable.")
    to: str | None = Field(None, max_length=64)
    reference: str | None = Field(None, max_length=128)
    debtor: Debtor | None = Field(None, description="Messages about this debtor (exact match).")
    created_after: Timestamp | None = Field(None, description="Exclusive.")
    created_before: Timestamp | None = Field(None, description="Exclusive.")
    updated_after: Timestamp | None = Field(
        None, description="Order by last change, oldest first; poll on with the returned cursor."
    )
    job: str | None = Field(None, max_length=64, description="A job's id: the messages made from its rows.")
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512, description="Opaque; from next_cursor.")

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else MessageIn._to(value)


# --- messages out -------------------------------------------------------------------------------------


class EventOut(BaseModel):
    status: Status
    at: datetime
    reason: str | None = None


class MessageOut(BaseModel):
    id: str = Field(description="UUID")
    legal_entity: str
    to: str
    text: str
    sender: str | None
    status: Status
    reason: str | None
    provider: str | None
    provider_message_id: str | None
    segments: int
    encoding: Literal["GSM-7", "UCS-2"]
    send_at: datetime | None
    valid_until: datetime | None
    recipient_timezone: str | None = None
    callback_url: str | None = None
    reference: str | None
    template: str | None = Field(None, description="The template code the text was rendered from.")
    job: str | None = Field(None, description="The id of the job whose row made this message.")
    debtor: str | None = None
    created_at: datetime
    updated_at: datetime
    events: list[EventOut] | None = Field(None, description="Present on single-message answers.")


class MessageListOut(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class ProblemFieldOut(BaseModel):
    field: str
    code: str
    message: str


class ProblemOut(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None
    errors: list[ProblemFieldOut] | None = None


class BatchResultOut(BaseModel):
    index: int
    id: str | None = None
    status: Status | None = None
    replayed: bool | None = Field(None, description="Present (true) when an idempotency_key replayed.")
    error: ProblemOut | None = None


class BatchOut(BaseModel):
    results: list[BatchResultOut]


# --- errors -------------------------------------------------------------------------------------------

# pydantic's error types -> our field codes
_PYDANTIC_CODES = {
    "missing": FieldCode.REQUIRED,
    "extra_forbidden": FieldCode.UNKNOWN_FIELD,
    "string_too_short": FieldCode.TOO_SHORT,
    "string_too_long": FieldCode.TOO_LONG,
    "too_short": FieldCode.TOO_SHORT,
    "too_long": FieldCode.TOO_LONG,
    "greater_than": FieldCode.TOO_SMALL,
    "greater_than_equal": FieldCode.TOO_SMALL,
    "less_than": FieldCode.TOO_LARGE,
    "less_than_equal": FieldCode.TOO_LARGE,
    "enum": FieldCode.INVALID_VALUE,
    "literal_error": FieldCode.INVALID_VALUE,
    "url_parsing": FieldCode.INVALID_URL,
    "url_scheme": FieldCode.INVALID_URL,
    "string_pattern_mismatch": FieldCode.INVALID_VALUE,
    "value_error": FieldCode.INVALID_VALUE,
}


def _field_name(loc: tuple[Any, ...], prefix: str) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return f"{prefix}{name}" if name else (prefix.rstrip(".") or "body")


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """pydantic's errors as ours: every invalid field, each once, with its stable code."""
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        kind = err["type"]
        code = _PYDANTIC_CODES.get(kind)
        if code is None:
            code = FieldCode.INVALID_TYPE if kind.endswith("_type") or kind.endswith("_parsing") else kind
        field = _field_name(tuple(err["loc"]), prefix)
        if (field, str(code)) in seen:
            continue
        seen.add((field, str(code)))
        out.append(FieldError(field, str(code), err["msg"].removeprefix("Value error, ")))
    return out
