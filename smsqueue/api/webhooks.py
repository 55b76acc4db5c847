"""Webhook delivery attempts of a message, and rotation of an entity's webhook secret (admin)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field
from sqlalchemy import select

from smsqueue import entity_cache
from smsqueue.api.http import json_object, require_admin, validate
from smsqueue.api.schemas import ProblemOut, Strict
from smsqueue.api.spec import route
from smsqueue.clock import iso, now
from smsqueue.config import settings
from smsqueue.crypto import encrypt, new_token
from smsqueue.db import session_scope, transaction
from smsqueue.errors import ApiError, Code, not_found
from smsqueue.messages import messages_t
from smsqueue.models import LegalEntity
from smsqueue.rules import audit
from smsqueue.webhooks.attempts import attempts_of

bp = Blueprint("webhooks", __name__)
TAG = "Webhooks"
ADMIN_NOTE = "Admin key only (an entity key gets 403)."
MAX_GRACE_SECONDS = 7 * 24 * 3600


class WebhookAttemptOut(BaseModel):
    sequence: int = Field(description="The event's `sequence` (its place in the message's events).")
    attempt: int = Field(description="1 for the first POST of that event, then one more per retry.")
    at: datetime = Field(description="When the POST was sent.")
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came.")
    error: str | None = Field(
        description="Why no answer came (timeout, connection error...), or why the event was given up "
        "without a POST (callback_url refused, the receiver failing past the retry period); else null."
    )


class WebhookAttemptsOut(BaseModel):
    items: list[WebhookAttemptOut]


class WebhookSecretIn(Strict):
    grace_seconds: int | None = Field(
        None,
        strict=True,  # an integer, not true/false or "60"
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the replaced secret keeps signing webhooks (in X-Smsqueue-Signature-Previous), "
        "so receivers can switch without rejecting an event. Default 86400 (24 h; "
        "SMSQUEUE_WEBHOOK_SECRET_GRACE_SECONDS); 0 stops it at once (a leaked secret).",
    )


class WebhookSecretOut(BaseModel):
    legal_entity: str = Field(description="The entity's code.")
    webhook_secret: str = Field(description="The new secret, in clear: shown this once only.")
    previous_secret_valid_until: datetime | None = Field(
        description="Until when webhooks also carry X-Smsqueue-Signature-Previous, made with the replaced "
        "secret; null when it was revoked at once."
    )


@route(
    bp,
    "GET",
    "/api/v1/messages/<message_id>/webhooks",
    summary="Webhook delivery attempts of a message",
    tag=TAG,
    responses={200: WebhookAttemptsOut, 404: ProblemOut, 401: ProblemOut, 403: ProblemOut},
    auth="admin",
    description=f"{ADMIN_NOTE} Every POST of the message's status webhooks, by sequence then attempt; a "
    "POST still waiting for its answer is not listed yet. `status_code` is null and `error` set when no "
    "answer came. An event given up without a POST (its callback_url refused at send time, or its "
    "receiver still failing when the retry period of at least 24 hours ended) has one item saying why. "
    "A message that has no callback_url has no items.",
)
def list_attempts(message_id: str) -> Response:
    require_admin()
    try:
        ident = uuid.UUID(message_id)
    except ValueError:
        raise not_found("message") from None
    with transaction() as conn:
        pk = conn.execute(select(messages_t.c.pk).where(messages_t.c.id == ident)).scalar()
        if pk is None:
            raise not_found("message")
        items = attempts_of(conn, pk)
    return jsonify({"items": items})


def _rotation_body() -> WebhookSecretIn:
    """The optional body: none at all means the defaults."""
    if not request.get_data(cache=True):
        return WebhookSecretIn()
    return validate(WebhookSecretIn, json_object())


@route(
    bp,
    "POST",
    "/api/v1/legal-entities/<code>/webhook-secret",
    summary="Rotate an entity's webhook secret",
    tag=TAG,
    body=WebhookSecretIn,
    responses={200: WebhookSecretOut, 404: ProblemOut, 401: ProblemOut, 403: ProblemOut},
    auth="admin",
    description=f"{ADMIN_NOTE} Makes a new webhook secret and shows it this once. From now on every "
    "webhook is signed with it (X-Smsqueue-Signature); for `grace_seconds` (default 24 h) the replaced "
    "secret signs too, in X-Smsqueue-Signature-Previous, so events in flight (retries included: each "
    "attempt is signed when it is sent) verify whichever secret the receiver holds. A receiver should "
    "accept either signature until `previous_secret_valid_until`. Rotating again within the grace period "
    "replaces the previous secret by the one being replaced now. The body is optional.",
    extra={"requestBody": {"required": False}},
)
def rotate_secret(code: str) -> Response:
    require_admin()
    body = _rotation_body()
    grace = settings().webhook_secret_grace if body.grace_seconds is None else body.grace_seconds
    at = now()
    secret = new_token("whsec_")
    with session_scope() as session:
        # No code holds a NUL (PostgreSQL text cannot): such a path names nothing.
        entity = (
            None
            if "\x00" in code
            else session.scalars(
                select(LegalEntity).where(LegalEntity.code == code).with_for_update()
            ).first()
        )
        if entity is None:
            raise ApiError(404, Code.NOT_FOUND, f"legal entity {code!r} not found")
        until = at + timedelta(seconds=grace) if grace > 0 else None
        entity.webhook_secret_previous = entity.webhook_secret if until is not None else None
        entity.webhook_secret_previous_until = until
        entity.webhook_secret = encrypt(secret)
        audit.record(
            session,
            "legal_entity.rotate_webhook_secret",
            entity.code,
            {"webhook_secret": [audit.MASKED, audit.MASKED]},
        )
        answer: dict[str, Any] = {
            "legal_entity": entity.code,
            "webhook_secret": secret,
            "previous_secret_valid_until": iso(until),
        }
    entity_cache.invalidate()
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response
