"""POST /api/v1/legal-entities/{code}/interactions: an interaction made elsewhere, counted against the
entity's 230-FZ limits (`rules.interactions`). Admin API, beside `legal_entities`."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field, field_validator

from smsqueue.api.http import json_object, require_admin, validate
from smsqueue.api.legal_entities import ADMIN_NOTE, BASE, ERRORS, TAG, entity_or_404
from smsqueue.api.schemas import DEBTOR_DOC, Debtor, IanaZone, MessageIn, ProblemOut, Strict, Timestamp
from smsqueue.api.spec import route
from smsqueue.clock import iso, now
from smsqueue.db import session_scope
from smsqueue.errors import validation_error
from smsqueue.rules import interactions

bp = Blueprint("interactions", __name__)

Channel = Literal["sms", "voice_message", "other"]


class InteractionIn(Strict):
    to: str | None = Field(None, max_length=64, description="The number, any common form (stored as E.164).")
    debtor: Debtor | None = Field(None, description=DEBTOR_DOC)
    at: Timestamp = Field(description="When it happened; not after now (the server's clock).")
    channel: Channel = Field(description="sms (sent through another system), voice_message or other.")
    recipient_timezone: IanaZone | None = Field(
        None, description="The recipient's IANA zone, for the local day it counts in (as for messages)."
    )

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else MessageIn._to(value)


class InteractionOut(BaseModel):
    id: int
    legal_entity: str
    to: str | None
    debtor: str | None
    at: str
    channel: Channel
    recipient_timezone: str | None
    created_at: str


@route(
    bp,
    "POST",
    f"{BASE}/<code>/interactions",
    summary="Report an interaction made elsewhere",
    tag=TAG,
    body=InteractionIn,
    responses={
        201: InteractionOut,
        400: ProblemOut,
        404: ProblemOut,
        415: ProblemOut,
        422: ProblemOut,
        **ERRORS,
    },
    auth="admin",
    description=f"{ADMIN_NOTE} An SMS sent through another system, a voice message or another "
    "interaction with a person, counted from now on against the same 230-FZ limits as a message this "
    "service sent, in the periods of its `at`: the recipient's local day, week and month (the zone of "
    "`recipient_timezone`, else of the number, else the entity's; for a debtor alone, the entity's) and, "
    "for fz.rolling_windows, its minute. With `debtor` it counts for that person, with `to` for that "
    "number, with both for both (as a message with a debtor does), in the entity's limit scope (its "
    "fz.limit_group, if any). Counted whether or not fz.enabled is on, like messages. `to` and `debtor` "
    "both left out: 422 (field `to`, code `required`); `at` after now: 422 (`in_future`); `at` may be "
    "long past (periods already over simply do not matter any more). Unknown entity: 404.",
)
def post_interaction(code: str) -> Response:
    require_admin()
    body = validate(InteractionIn, json_object())
    item = interactions.Interaction(body.to, body.debtor, body.at, body.channel, body.recipient_timezone)
    current = now()
    errors = interactions.errors(item, current)
    if errors:
        raise validation_error(errors)
    with session_scope() as session:
        entity = entity_or_404(session, code)
        new_id = interactions.record(session.connection(), entity, item, current)
    response = jsonify(
        {
            "id": new_id,
            "legal_entity": code,
            "to": item.to,
            "debtor": item.debtor,
            "at": iso(item.at),
            "channel": item.channel,
            "recipient_timezone": item.recipient_timezone,
            "created_at": iso(current),
        }
    )
    response.status_code = 201
    return response
