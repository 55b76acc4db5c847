"""API keys admin API: list, create, change (name, expiry, rate limit), revoke. Admin keys only.

The key itself is shown once, in the 201 of its creation; lists show its prefix, never the key or its
hash. A revoked key stays listed (with `revoked_at`) so that the audit log's references stay readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from smsqueue import auth
from smsqueue.api.http import json_object, require_admin, validate
from smsqueue.api.schemas import ProblemOut, Strict, Timestamp
from smsqueue.api.spec import route
from smsqueue.clock import iso, now
from smsqueue.db import session_scope
from smsqueue.errors import ApiError, Code, FieldCode, FieldError, validation_error
from smsqueue.models import ApiKey
from smsqueue.rules import audit

bp = Blueprint("keys", __name__)
TAG = "API keys"
BASE = "/api/v1/keys"
ERRORS: dict[int, Any] = {401: ProblemOut, 403: ProblemOut, 429: ProblemOut}
BODY_ERRORS: dict[int, Any] = {400: ProblemOut, 415: ProblemOut, 422: ProblemOut}
MAX_RATE = 100_000.0

RATE = Field(
    None,
    gt=0,
    le=MAX_RATE,
    description="Requests a second this key may make, counted across every web process (a burst of "
    "one second's worth is allowed); over it, `429 rate_limited` with `Retry-After`. null: no limit.",
)
EXPIRES = Field(
    None, description="From this time on the key is 401. Must be in the future when set. null: never."
)


class KeyIn(Strict):
    name: str | None = Field(None, max_length=200)
    role: Literal["admin", "entity"]
    entities: list[str] = Field(
        default_factory=list, max_length=100, description="Codes; required for an entity key."
    )
    expires_at: Timestamp | None = EXPIRES
    rate_limit_per_second: float | None = RATE


class KeyPatch(Strict):
    """Only the fields given change; `null` clears `expires_at` and `rate_limit_per_second`."""

    name: str | None = Field(None, max_length=200)
    expires_at: Timestamp | None = EXPIRES
    rate_limit_per_second: float | None = RATE


class KeyOut(BaseModel):
    id: int
    name: str | None
    role: str
    entities: list[str]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="Precise to a minute.")
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_limit_per_second: float | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The key itself: shown in this answer only.")


class KeyListOut(BaseModel):
    items: list[KeyOut]


def render(key: ApiKey, entities: list[str]) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "entities": entities,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "rate_limit_per_second": key.rate_limit_per_second,
    }


def _audited(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "expires_at": key.expires_at,
        "rate_limit_per_second": key.rate_limit_per_second,
    }


def _future(expires_at: datetime | None) -> list[FieldError]:
    if expires_at is not None and expires_at <= now():
        return [FieldError("expires_at", FieldCode.IN_PAST, "must be in the future")]
    return []


def _key_or_404(session: Any, key_id: int) -> ApiKey:
    key = auth.key_for_update(session, key_id)
    if key is None:
        raise ApiError(404, Code.NOT_FOUND, f"key {key_id} not found")
    return key


@route(
    bp,
    "GET",
    BASE,
    summary="List API keys",
    tag=TAG,
    auth="admin",
    responses={200: KeyListOut, **ERRORS},
    description="Every key, revoked and expired ones too, newest first. Never the key or its hash.",
)
def list_keys() -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify({"items": [render(k, codes) for k, codes in auth.list_keys(session)]})


@route(
    bp,
    "POST",
    BASE,
    summary="Create an API key",
    tag=TAG,
    auth="admin",
    body=KeyIn,
    responses={201: KeyCreatedOut, **ERRORS, **BODY_ERRORS},
    description="An entity key needs `entities` (each an existing entity: else `not_found` on "
    "`entities`); an admin key takes none. The key is in the 201 body, and never shown again.",
)
def create_key() -> tuple[Response, int]:
    require_admin()
    body = validate(KeyIn, json_object())
    errors = _future(body.expires_at)
    if body.role == auth.ENTITY and not body.entities:
        errors.append(FieldError("entities", FieldCode.REQUIRED, "an entity key needs an entity"))
    if body.role == auth.ADMIN and body.entities:
        errors.append(FieldError("entities", FieldCode.INVALID_VALUE, "an admin key has no entities"))
    if errors:
        raise validation_error(errors)
    with session_scope() as session:
        try:
            row, key = auth.create_key_row(
                session, body.role, body.entities, body.name, body.expires_at, body.rate_limit_per_second
            )
        except auth.UnknownEntity as exc:
            raise validation_error(
                [FieldError("entities", FieldCode.NOT_FOUND, f"unknown legal entity: {exc}")]
            ) from None
        codes = sorted(set(body.entities))
        audit.record(
            session,
            "key.create",
            str(row.id),
            {**audit.diff({}, _audited(row)), "role": [None, row.role], "entities": [None, codes]},
        )
        return jsonify({**render(row, codes), "key": key}), 201


@route(
    bp,
    "PATCH",
    f"{BASE}/<int:key_id>",
    summary="Change an API key",
    tag=TAG,
    auth="admin",
    body=KeyPatch,
    responses={200: KeyOut, 404: ProblemOut, 409: ProblemOut, **ERRORS, **BODY_ERRORS},
    description="Changes `name`, `expires_at` and `rate_limit_per_second`; its role and entities stay. "
    "A change reaches every web process within a second. A revoked key cannot be changed (`409`).",
)
def update_key(key_id: int) -> Response:
    require_admin()
    body = validate(KeyPatch, json_object())
    given = body.model_fields_set
    if "expires_at" in given and (errors := _future(body.expires_at)):
        raise validation_error(errors)
    with session_scope() as session:
        key = _key_or_404(session, key_id)
        if key.revoked_at is not None:
            raise ApiError(409, Code.CONFLICT, "the key is revoked")
        before = _audited(key)
        for name in given:
            setattr(key, name, getattr(body, name))
        session.flush()
        audit.record(session, "key.update", str(key.id), audit.diff(before, _audited(key)))
        auth.forget_cache()
        return jsonify(render(key, auth.entity_codes_of(session, key)))


@route(
    bp,
    "DELETE",
    f"{BASE}/<int:key_id>",
    summary="Revoke an API key",
    tag=TAG,
    auth="admin",
    responses={204: "revoked", 404: ProblemOut, **ERRORS},
    description="From then on the key is `401` on every process (within a second). Revoking a revoked "
    "key is `204` again. A key may revoke itself.",
)
def revoke_key(key_id: int) -> tuple[str, int]:
    require_admin()
    with session_scope() as session:
        key = _key_or_404(session, key_id)
        if auth.revoke_key(session, key):
            audit.record(session, "key.revoke", str(key.id), {"revoked_at": [None, iso(key.revoked_at)]})
    return "", 204
