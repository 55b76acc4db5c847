"""Request and response models of the providers admin API. Field errors carry our stable codes
(`smsqueue.errors.FieldCode`); the settings of each kind are checked by its client (`validate_settings`),
in smsqueue.rules.provider_settings, since what is valid depends on the kind."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from smsqueue.api.rules_schemas import CODE_PATTERN, check_code
from smsqueue.api.schemas import Strict
from smsqueue.errors import FieldCode
from smsqueue.rules.provider_settings import MASKED

# The built-in clients (smsqueue.providers.KINDS; a test keeps the two equal).
ProviderKind = Literal["smsc", "smsru", "smsaero", "http_json", "smstraffic", "iqsms"]

MAX_TIMEOUT = 60.0  # seconds; a provider call holds a sender thread that long at most
MAX_RATE = 100_000.0
# The token travels in the report URL's query string: URL-safe characters only, long enough not to guess.
TOKEN_PATTERN = r"^[A-Za-z0-9._~-]{16,128}$"
_TOKEN = re.compile(TOKEN_PATTERN)

SETTINGS_DESCRIPTION = (
    "The kind's settings (secrets marked *): smsc `base_url`, `login`, `password`* (or `apikey`*); smsru "
    "`base_url`, `api_id`*; smsaero `base_url` (ending in /v2), `email`, `api_key`*; http_json `url`, "
    "`auth_header`, `token`*, `to_field`, `text_field`, `sender_field`, `id_path`, `status_url`; smstraffic "
    "`base_url`, `reserve_url` (used on its code 1000 and when the main host cannot be reached), `login`, "
    "`password`*; iqsms `base_url`, `login`, `password`*, `status_queue` (3-16 Latin letters and digits; "
    "default: derived from the provider code). Every kind "
    "also takes `sender`, the sender name used when neither the message nor the entity's link names one. "
    "Values are strings; `base_url` (and `reserve_url`) left out is the provider's public address."
)


def check_token(value: str | None) -> str | None:
    if value is not None and value != MASKED and not _TOKEN.fullmatch(value):
        raise PydanticCustomError(
            FieldCode.INVALID_VALUE, "16 to 128 characters: Latin letters, digits and '.', '_', '~', '-'"
        )
    return value


class _ProviderFields(Strict):
    name: str | None = Field(None, min_length=1, max_length=300, description="Default: the code.")
    enabled: bool | None = Field(None, strict=True, description="A disabled provider takes no new sends.")
    settings: dict[str, Any] | None = Field(None, description=SETTINGS_DESCRIPTION)
    rate_limit_per_second: float | None = Field(
        None,
        gt=0,
        le=MAX_RATE,
        strict=True,
        description="Messages per second through this provider, across all workers; null: no limit.",
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_TIMEOUT,
        strict=True,
        description="Seconds a provider call may wait for its answer (default 10).",
    )


class ProviderIn(_ProviderFields):
    code: str = Field(max_length=64, description=f"Unique; {CODE_PATTERN}. Cannot change.")
    kind: ProviderKind = Field(description="The built-in client that speaks this provider's API.")
    callback_token: str | None = Field(
        None,
        description="The token of the delivery-report URL; 16 to 128 URL-safe characters. Default: a "
        "new random one. Shown in clear in the 201 only.",
    )

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_code(value)

    @field_validator("callback_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value == MASKED:
            raise PydanticCustomError(FieldCode.INVALID_VALUE, f'"{MASKED}" is the mask, not a token')
        return check_token(value)


class ProviderPatch(_ProviderFields):
    code: str | None = Field(None, description="May be given only with the provider's own code.")
    kind: str | None = Field(None, description="May be given only with the provider's own kind.")
    callback_token: str | None = Field(
        None, description=f'A new token (16 to 128 URL-safe characters); "{MASKED}" keeps the current one.'
    )

    @field_validator("callback_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return check_token(value)


class ProviderOut(BaseModel):
    code: str
    kind: ProviderKind
    name: str
    enabled: bool
    settings: dict[str, Any] = Field(description='Secrets that are set show as "***".')
    rate_limit_per_second: float | None
    timeout_seconds: float
    callback_token: str = Field(description='In clear in the 201 of a creation only; "***" afterwards.')
    paused_until: str | None = Field(
        description="Set when the provider answered that the account itself cannot send (bad credentials, "
        "no funds, a blocked address): until then it takes no message, and the entities' messages go to "
        "their next provider at once. After it, one message is sent as a probe: if it gets through the "
        "pause is lifted (null again), if it is refused the same way the provider is paused again. A time "
        "in the past: the next message is the probe. Length: SMSQUEUE_PROVIDER_PAUSE_SECONDS (300).",
        examples=["2026-12-03T12:05:00Z"],
    )
    pause_reason: str | None = Field(
        description="The provider's answer that paused it, e.g. `provider_error:415`; null when not paused."
    )


class ProviderListOut(BaseModel):
    items: list[ProviderOut]


class BalanceOut(BaseModel):
    balance: float = Field(description="The account's money, in `currency`.")
    currency: str = Field(description="ISO 4217 code.", examples=["RUB"])
