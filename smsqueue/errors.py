"""Problem details (RFC 9457) and the stable error codes of the API: the one place they are named."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Code(StrEnum):
    BAD_JSON = "bad_json"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    NOT_CANCELABLE = "not_cancelable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    PROVIDER_ERROR = "provider_error"
    INTERNAL_ERROR = "internal_error"


class FieldCode(StrEnum):
    """Codes of the entries of a 422's `errors` list."""

    REQUIRED = "required"
    INVALID_TYPE = "invalid_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_FIELD = "unknown_field"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    INVALID_PHONE = "invalid_phone"
    INVALID_DATETIME = "invalid_datetime"
    IN_PAST = "in_past"
    IN_FUTURE = "in_future"
    TOO_FAR_AHEAD = "too_far_ahead"
    INVALID_TIMEZONE = "invalid_timezone"
    INVALID_URL = "invalid_url"
    INVALID_HEADER = "invalid_header"  # http_json's auth_header: not an HTTP header name
    INVALID = "invalid"  # http_json's field names and token: empty (kept as the client has answered it)
    CALLBACK_URL_NOT_ALLOWED = "callback_url_not_allowed"
    INVALID_SENDER = "invalid_sender"
    UNKNOWN_PROVIDER = "unknown_provider"
    PROVIDER_NOT_ALLOWED = "provider_not_allowed"
    NOT_FOUND = "not_found"
    INVALID_INN = "invalid_inn"
    INVALID_TIME = "invalid_time"
    INVALID_WINDOW = "invalid_window"
    EMPTY_WINDOW = "empty_window"
    CROSSES_MIDNIGHT = "crosses_midnight"
    LIMIT_BELOW_SHORTER_PERIOD = "limit_below_shorter_period"
    INVALID_CURSOR = "invalid_cursor"
    DUPLICATE = "duplicate"
    MISSING_IDENTIFICATION = "missing_identification"  # 137-FZ: the text lacks the creditor or its phone
    IDENTIFICATION_INCOMPLETE = "identification_incomplete"  # fz.identification without both fields


TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class ApiError(Exception):
    """An error answer. Raised anywhere below a view; turned into problem+json by the app."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.title = title or TITLES.get(status, "Error")

    def to_problem(self) -> dict[str, Any]:
        return problem(self.status, self.code, self.detail, errors=self.errors, title=self.title)


def problem(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    errors: list[FieldError] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "code": str(code),
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = [e.to_dict() for e in errors]
    return body


def validation_error(errors: list[FieldError]) -> ApiError:
    count = len(errors)
    return ApiError(
        422, Code.VALIDATION_ERROR, f"{count} field{'s are' if count != 1 else ' is'} invalid", errors=errors
    )


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, Code.NOT_FOUND, f"{what} not found")
