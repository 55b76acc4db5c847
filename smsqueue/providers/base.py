"""The provider interface: what every aggregator client does, and the result and error types it speaks.

A client turns our message into the provider's request and the provider's answers into ours. It knows
nothing of the database, Celery or Flask: the send task hands it an `OutgoingSMS` and a `ProviderConfig`
(settings already decrypted) and records what comes back.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlparse

import requests

from smsqueue.errors import FieldCode
from smsqueue.statuses import Reason, Status, provider_error

log = logging.getLogger(__name__)


# --- what goes in -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider row, as a client needs it. `settings` holds the secrets in clear: never log it."""

    code: str
    kind: str
    settings: Mapping[str, Any]
    timeout: float = 10.0

    def __repr__(self) -> str:  # keeps secrets out of tracebacks and logs
        return f"ProviderConfig(code={self.code!r}, kind={self.kind!r}, timeout={self.timeout!r})"


@dataclass(frozen=True, slots=True)
class OutgoingSMS:
    message_id: str  # our UUID, as text
    ref: int  # our numeric id of the message: sent to providers that take a client id (SMSC `id`)
    to: str  # E.164, "+79161234567"
    text: str
    sender: str | None = None
    report_url: str | None = None  # where the provider should push delivery reports (holds a token)
    ttl_seconds: int | None = None  # how long the provider may keep trying, from valid_until

    def __repr__(self) -> str:
        return f"OutgoingSMS(message_id={self.message_id!r}, ref={self.ref!r}, to={self.to!r})"


@dataclass(frozen=True, slots=True)
class StatusQuery:
    provider_message_id: str
    to: str
    ref: int


# --- what comes back ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider's status of one message, in our terms. `status` None: still in progress."""

    status: Status | None
    reason: str | None = None  # e.g. "provider_error:20"
    provider_status: str | None = None  # the provider's own status code, kept for the event


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str
    update: StatusUpdate | None = None  # some answers already carry a status
    cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """One delivery report from a provider's callback."""

    provider_message_id: str | None
    update: StatusUpdate
    ref: int | None = None  # our numeric id, where the provider echoes it


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A framework-free view of a provider's callback request."""

    method: str
    args: Mapping[str, list[str]] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def first(self, name: str) -> str | None:
        """A parameter from the form, else from the query string."""
        for source in (self.form, self.args):
            values = source.get(name)
            if values:
                return values[0]
        return None


@dataclass(frozen=True, slots=True)
class ReportAnswer:
    """What the callback endpoint answers, in the form the provider expects."""

    body: str = "OK"
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ParsedReports:
    reports: list[Report]
    answer: ReportAnswer = ReportAnswer()


@dataclass(frozen=True, slots=True)
class Balance:
    amount: Decimal
    currency: str = "RUB"  # ISO 4217


# --- errors -------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call that did not succeed. `code` is the provider's own error code, when it gave one.

    `provider_wide`: the account itself cannot send (bad credentials, no funds, an address blocked, a
    base_url that leads nowhere): every message would get the same answer, so the provider is paused
    for all of them (smsqueue.pauses) and this message fails over at once. A refusal of this message
    only (its text, its sender name, its number) is never provider-wide."""

    def __init__(self, message: str, *, code: str | int | None = None, provider_wide: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = None if code is None else str(code)
        self.provider_wide = provider_wide

    @property
    def reason(self) -> str:
        return provider_error(self.code if self.code is not None else self.default_code)

    default_code: ClassVar[str] = "error"


class TransientProviderError(ProviderError):
    """Worth retrying: the provider did not take the message (connection refused, 5xx, documented
    transient codes) or, with `may_have_sent`, it may have: the request went out and no answer came."""

    default_code = "transient"

    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        may_have_sent: bool = False,
        retry_after: float | None = None,
        provider_wide: bool = False,
    ) -> None:
        super().__init__(message, code=code, provider_wide=provider_wide)
        self.may_have_sent = may_have_sent
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        if self.code is None and self.may_have_sent:
            return provider_error("timeout")
        return super().reason


class PermanentProviderError(ProviderError):
    """The provider refused the message for good: another provider is tried at once, without retries
    here. `number_problem`: the number itself is bad, so no other provider is tried. `provider_wide`:
    the account is the problem (bad login, no funds): the provider is paused too."""

    default_code = "permanent"

    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        number_problem: bool = False,
        provider_wide: bool = False,
    ) -> None:
        super().__init__(message, code=code, provider_wide=provider_wide)
        self.number_problem = number_problem


class TextTooLong(PermanentProviderError):
    """The text is longer than this provider takes (found by the client, before any call): another
    provider may take it. Its reason is ours, `text_too_long`, not a provider's code."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the provider takes at most {limit} characters", code="text_too_long")

    @property
    def reason(self) -> str:
        return Reason.TEXT_TOO_LONG


class InvalidNumber(PermanentProviderError):
    """The provider's documented answer for a bad number: no provider can reach it. Its reason is ours,
    `invalid_number`; `code` keeps the provider's own."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message, code=code, number_problem=True)

    @property
    def reason(self) -> str:
        return Reason.INVALID_NUMBER


class LookupNotSupported(ProviderError):
    """The provider cannot tell whether it has a message of ours (no lookup by our id)."""


# --- settings checks shared by the clients -------------------------------------------------------------

SettingProblem = tuple[str, str, str]  # (field, FieldCode, message)


def url_problems(settings: Mapping[str, Any], *keys: str) -> list[SettingProblem]:
    """`invalid_url` for each of `keys` that is given and is not an http(s) URL."""
    return [
        (f"settings.{key}", FieldCode.INVALID_URL, f"{key} must be an http(s) URL")
        for key in keys
        if settings.get(key) is not None and not is_http_url(settings[key])
    ]


def required_problems(settings: Mapping[str, Any], *keys: str) -> list[SettingProblem]:
    """`required` for each of `keys` that is missing or blank."""
    return [
        (f"settings.{key}", FieldCode.REQUIRED, f"{key} is required")
        for key in keys
        if not (isinstance(settings.get(key), str) and settings[key].strip())
    ]


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and not any(c.isspace() for c in value)


# --- the client ---------------------------------------------------------------------------------------


class ProviderClient(ABC):
    """Base of every provider client. Subclasses set the class attributes and implement the methods."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    settings_keys: ClassVar[frozenset[str]] = frozenset()  # every key `settings` may hold
    secret_keys: ClassVar[frozenset[str]] = frozenset()  # those write-only and encrypted at rest
    status_batch_size: ClassVar[int] = 1  # how many messages one status call may ask about
    can_lookup: ClassVar[bool] = False  # whether `lookup` can find a message by our ref
    pushes_reports: ClassVar[bool] = False  # whether the provider can call our delivery-report URL
    has_status_queue: ClassVar[bool] = False  # statuses wait in a queue at the provider (`pop_statuses`)
    # How long after sending the provider can still tell a message's status: polling ends the message
    # (`status_timeout`) at this age if it is shorter than SMSQUEUE_STATUS_TIMEOUT. None: no such limit.
    status_window: ClassVar[timedelta | None] = None

    def __init__(self, config: ProviderConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.config.settings

    def base_url(self) -> str:
        return str(self.settings.get("base_url") or self.default_base_url).rstrip("/")

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """Problems with a settings dict, as (field, code, message); empty when it is usable."""
        return [
            (f"settings.{key}", FieldCode.UNKNOWN_FIELD, f"{cls.kind} has no setting {key!r}")
            for key in settings
            if key not in cls.settings_keys
        ]

    @abstractmethod
    def send(self, sms: OutgoingSMS) -> SendResult:
        """Hand one message to the provider. Raises TransientProviderError or PermanentProviderError."""

    @abstractmethod
    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        """Current statuses by provider_message_id; messages the provider does not know are left out.
        At most `status_batch_size` queries per call."""

    def lookup(self, sms: OutgoingSMS) -> SendResult | None:
        """Find a message we may have sent, by our ref: its result if the provider has it, None if it
        certainly does not. Raises LookupNotSupported where the provider cannot tell."""
        raise LookupNotSupported(f"{self.kind} cannot look a message up by our id")

    def pop_statuses(self, limit: int) -> list[Report]:
        """Take up to `limit` statuses out of the provider's status queue (where `has_status_queue`)."""
        raise PermanentProviderError(f"{self.kind} has no status queue")

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        """Delivery reports from the provider's callback request, and the answer it expects."""
        raise PermanentProviderError(f"{self.kind} does not push delivery reports")

    @abstractmethod
    def balance(self) -> Balance:
        """The account balance."""

    # -- helpers for subclasses --

    def http(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call with the provider's timeout, its failures turned into our error types.

        A refused or failed connection never reached the provider: transient, not sent. A read timeout
        after the request went out is ambiguous: transient with `may_have_sent`. A 5xx or 429 is
        transient and not sent (the provider says it did not take it). Secrets in the URL or body are
        never put into the error message.
        """
        kwargs.setdefault("timeout", (min(self.config.timeout, 5.0), self.config.timeout))
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.ConnectTimeout as exc:
            raise TransientProviderError("connection timed out", code="connect_timeout") from exc
        except requests.exceptions.ConnectionError as exc:
            # A connection reset after the request was written is ambiguous; requests reports both as
            # ConnectionError, so tell them apart by whether the cause is a read-side failure.
            text = repr(exc)
            if "RemoteDisconnected" in text or "Connection reset" in text or "ReadTimeout" in text:
                raise TransientProviderError(
                    "connection lost after the request was sent", code="connection_lost", may_have_sent=True
                ) from exc
            raise TransientProviderError("connection failed", code="connection_failed") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise TransientProviderError("no answer within the timeout", may_have_sent=True) from exc
        except requests.exceptions.RequestException as exc:
            raise TransientProviderError(
                f"request failed: {type(exc).__name__}", code="request_failed"
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            raise TransientProviderError(
                f"HTTP {response.status_code}",
                code=f"http_{response.status_code}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        return response
