"""Providers admin API: create, list, read, edit, disable, delete, and ask a provider for its balance.

Every endpoint needs an admin key. Writes go through `rules.admin` (secrets encrypted at rest, caches
told); settings are checked, merged and masked by `rules.provider_settings`. Secrets never leave: every
answer masks them as "***"; the callback token is shown in clear once, in the 201 of the creation.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smsqueue.api.http import json_object, require_admin
from smsqueue.api.provider_schemas import (
    BalanceOut,
    ProviderIn,
    ProviderListOut,
    ProviderOut,
    ProviderPatch,
)
from smsqueue.api.rules_schemas import CODE_PATTERN
from smsqueue.api.schemas import ProblemOut, field_errors
from smsqueue.api.spec import route
from smsqueue.db import session_scope
from smsqueue.errors import ApiError, Code, FieldCode, FieldError, validation_error
from smsqueue.models import Provider
from smsqueue.providers import KINDS
from smsqueue.providers.base import ProviderError
from smsqueue.rules import admin
from smsqueue.rules.provider_clients import client_of
from smsqueue.rules.provider_settings import MASKED, masked_settings, merge_settings, settings_problems

log = logging.getLogger(__name__)
bp = Blueprint("providers", __name__)
TAG = "Providers"
BASE = "/api/v1/providers"
ERRORS: dict[int, Any] = {401: ProblemOut, 403: ProblemOut}
BODY_ERRORS: dict[int, Any] = {400: ProblemOut, 415: ProblemOut, 422: ProblemOut}
ADMIN_NOTE = "Admin key only (an entity key gets 403)."
NOT_NULL = ("name", "enabled", "settings", "timeout_seconds")
DEFAULT_TIMEOUT = 10.0

SETTINGS_RULES = (
    "`settings` are checked for the kind by its client: an unknown key is `unknown_field`, a missing "
    "credential `required`, a bad URL `invalid_url`, a value that is not a string `invalid_type` (each "
    "with field `settings.<key>`); secrets may not be given as the mask `***` (`invalid_value`)."
)


# --- rendering ----------------------------------------------------------------------------------------


def render(provider: Provider, callback_token: str = MASKED) -> dict[str, Any]:
    return {
        "code": provider.code,
        "kind": provider.kind,
        "name": provider.name,
        "enabled": provider.enabled,
        "settings": masked_settings(provider),
        "rate_limit_per_second": _number(provider.rate_limit_per_second),
        "timeout_seconds": _number(provider.timeout_seconds),
        "callback_token": callback_token,
    }


def _number(value: float | None) -> float | int | None:
    """50, not 50.0, for a whole number (the columns are floats)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


# --- validation ---------------------------------------------------------------------------------------


def _parse(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, list[FieldError]]:
    """The body as `model`, or None with its field errors (collected, so that the settings' own errors
    can be reported in the same 422)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, field_errors(exc)


def _null_errors(data: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(name, FieldCode.INVALID_TYPE, "must not be null")
        for name in NOT_NULL
        if name in data and data[name] is None
    ]


def _settings_errors(kind: str, settings: Any) -> list[FieldError]:
    if not isinstance(settings, dict):
        return []  # the model reports a settings that is not an object
    return [FieldError(f, c, msg) for f, c, msg in settings_problems(kind, settings)]


def _raise_if(errors: list[FieldError]) -> None:
    if errors:
        unique = list({(e.field, e.code): e for e in errors}.values())
        raise validation_error(unique)


def provider_or_404(session: Session, code: str, *, for_update: bool = False) -> Provider:
    if for_update:
        provider = admin.provider_for_update(session, code)
    else:
        provider = admin.provider_by_code(session, code)
    if provider is None:
        raise ApiError(404, Code.NOT_FOUND, f"provider {code!r} not found")
    return provider


def _duplicate(code: str) -> ApiError:
    return ApiError(409, Code.CONFLICT, f"a provider with code {code!r} exists already")


# --- views --------------------------------------------------------------------------------------------


@route(
    bp,
    "GET",
    BASE,
    summary="List providers",
    tag=TAG,
    responses={200: ProviderListOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Every provider, enabled or not, by code. Secrets in `settings` and the "
    '`callback_token` are masked ("***").',
)
def list_providers() -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify({"items": [render(p) for p in admin.list_providers(session)]})


@route(
    bp,
    "POST",
    BASE,
    summary="Create a provider",
    tag=TAG,
    body=ProviderIn,
    responses={201: ProviderOut, 409: ProblemOut, **BODY_ERRORS, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} `code` is unique and permanent, 1 to 64 characters matching `{CODE_PATTERN}` "
    f"(an existing code: 409 `conflict`). `kind` is one of {', '.join(sorted(KINDS))}. {SETTINGS_RULES} "
    "Defaults: name = code, enabled, no rate limit, timeout 10 s (at most 60). `rate_limit_per_second` "
    "holds across every worker; a message over it waits for its turn, it is not rejected. Secrets are "
    "encrypted at rest and never shown again. `callback_token` (16 to 128 URL-safe characters) is the "
    "`token` of this provider's delivery-report URL, `/api/v1/providers/{code}/dlr?token=...`; left out, "
    "a random one is made. The 201 body shows it in clear, the only time it is shown; `Location` names "
    "the provider. SMS Aero is given the report URL with every message; SMSC.ru and SMS.ru take it once, "
    "in the provider's own account settings.",
)
def create_provider() -> Response:
    require_admin()
    data = json_object()
    body, errors = _parse(ProviderIn, data)
    errors += _null_errors(data)
    kind = data.get("kind")
    if isinstance(kind, str) and kind in KINDS:
        errors += _settings_errors(kind, data.get("settings", {}))
    _raise_if(errors)
    try:
        with session_scope() as session:
            if admin.provider_by_code(session, body.code) is not None:
                raise _duplicate(body.code)
            provider, token = admin.create_provider(
                session,
                code=body.code,
                kind=body.kind,
                name=body.name or body.code,
                settings=body.settings or {},
                enabled=True if body.enabled is None else body.enabled,
                rate_limit_per_second=body.rate_limit_per_second,
                timeout_seconds=body.timeout_seconds or DEFAULT_TIMEOUT,
                callback_token=body.callback_token,
            )
            rendered = render(provider, callback_token=token)
    except IntegrityError:
        raise _duplicate(body.code) from None  # created by another request a moment ago
    response = jsonify(rendered)
    response.status_code = 201
    response.headers["Location"] = f"{BASE}/{body.code}"
    return response


@route(
    bp,
    "GET",
    f"{BASE}/<code>",
    summary="Read a provider",
    tag=TAG,
    responses={200: ProviderOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f'{ADMIN_NOTE} Secrets in `settings` and the `callback_token` are masked ("***").',
)
def get_provider(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify(render(provider_or_404(session, code)))


@route(
    bp,
    "PATCH",
    f"{BASE}/<code>",
    summary="Edit, disable or enable a provider",
    tag=TAG,
    body=ProviderPatch,
    responses={200: ProviderOut, 404: ProblemOut, **BODY_ERRORS, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Only the fields given change. `settings` is merged key by key (a JSON merge "
    "patch): a key given replaces its value, a key given as null is removed, a key left out is kept; a "
    'secret left out, or sent back as "***", keeps its value, so a body read with GET can be sent back '
    f"as it is. The merged settings are checked as on creation. {SETTINGS_RULES} `enabled: false` "
    "disables the provider: no message is handed to it from then on (waiting messages go to the "
    "entity's next provider by priority, or fail with `no_provider_available`; those that asked for it "
    "are rejected with `provider_not_allowed`), while messages it already has still take its delivery "
    "reports; `enabled: true` enables it again. `rate_limit_per_second: null` removes the limit. "
    '`callback_token` sets a new token (the old one stops working at once); "***" keeps it. `code` and '
    "`kind` cannot change (given with another value: 422 `invalid_value`); name, enabled, settings and "
    "timeout_seconds may not be null (`invalid_type`). Every worker uses the new settings from its next "
    "call. Answers the provider, masked.",
)
def patch_provider(code: str) -> Response:
    require_admin()
    data = json_object()
    with session_scope() as session:
        return jsonify(render(edit_provider(session, code, data)))


def edit_provider(session: Session, code: str, data: dict[str, Any]) -> Provider:
    """A PATCH body (a JSON object) checked and applied to the provider `code`: 404, a 422 listing every
    invalid field, or the provider changed. The console's enable/disable form goes through here."""
    body, errors = _parse(ProviderPatch, data)
    errors += _null_errors(data)
    provider = provider_or_404(session, code, for_update=True)
    if data.get("code") not in (None, provider.code):
        errors.append(FieldError("code", FieldCode.INVALID_VALUE, "the code of a provider cannot change"))
    if data.get("kind") not in (None, provider.kind):
        errors.append(FieldError("kind", FieldCode.INVALID_VALUE, "the kind of a provider cannot change"))
    settings = None
    if isinstance(data.get("settings"), dict):
        settings = merge_settings(provider, data["settings"])
        errors += _settings_errors(provider.kind, settings)
    _raise_if(errors)
    given = body.model_fields_set
    columns = {
        name: getattr(body, name)
        for name in ("name", "enabled", "rate_limit_per_second", "timeout_seconds")
        if name in given
    }
    token = body.callback_token if body.callback_token not in (None, MASKED) else None
    return admin.update_provider(session, provider, settings=settings, callback_token=token, **columns)


@route(
    bp,
    "DELETE",
    f"{BASE}/<code>",
    summary="Delete a provider nothing refers to",
    tag=TAG,
    responses={204: "deleted", 404: ProblemOut, 409: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 204 when deleted. A provider that messages (sent through it or asking for "
    "it) or legal entities' provider links refer to is kept: 409 `conflict`; disable it instead "
    '(`PATCH {"enabled": false}`), or unlink it from its entities first when no message refers to it.',
)
def delete_provider(code: str) -> Response:
    require_admin()
    try:
        with session_scope() as session:
            provider = provider_or_404(session, code, for_update=True)
            admin.delete_provider(session, provider)
    except admin.ProviderInUse as exc:
        raise _in_use(code, str(exc)) from None
    except IntegrityError:
        raise _in_use(code, "messages refer to it") from None  # one stored a moment ago
    return Response(status=204)


def _in_use(code: str, why: str) -> ApiError:
    return ApiError(
        409,
        Code.CONFLICT,
        f"provider {code!r} cannot be deleted: {why}; disable it instead (PATCH enabled: false)",
    )


@route(
    bp,
    "GET",
    f"{BASE}/<code>/balance",
    summary="Ask a provider for the account balance",
    tag=TAG,
    responses={200: BalanceOut, 404: ProblemOut, 502: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Asks the provider now, with its settings and timeout (disabled or not): "
    '`{"balance": 100.01, "currency": "RUB"}`, currency an ISO 4217 code. When the provider fails (refused '
    "credentials, an error answer, no answer within its timeout, or a kind without a balance call: "
    "http_json), 502 `provider_error` with the provider's reason in `detail`.",
)
def get_balance(code: str) -> Response:
    require_admin()
    return jsonify(provider_balance(code))


def provider_balance(code: str) -> dict[str, Any]:
    """`{"balance": ..., "currency": ...}` asked of the provider now; 404, or 502 `provider_error` with the
    provider's reason. The console's provider page fetches it through here."""
    with session_scope() as session:
        provider = provider_or_404(session, code)
    # No database connection is held while the provider answers.
    try:
        balance = client_of(provider).balance()
    except ProviderError as exc:
        raise ApiError(
            502, Code.PROVIDER_ERROR, f"provider {code!r} failed: {exc.reason} ({exc.message})"
        ) from None
    except Exception:
        log.exception("balance call to provider %s failed unexpectedly", code)
        raise ApiError(502, Code.PROVIDER_ERROR, f"provider {code!r} gave an answer we cannot read") from None
    return {"balance": float(balance.amount), "currency": balance.currency}
