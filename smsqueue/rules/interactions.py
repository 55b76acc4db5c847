"""Interactions made elsewhere (API.md "Interactions made elsewhere"): a creditor's SMS sent through
another system, a voice message, a call. Each is stored and counted against the same 230-FZ limits as a
sent message, in the periods of its `at` (the recipient's local day, week and month, and its minute for
the rolling windows), under the same locks, so messages the product sends afterwards see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from smsqueue.errors import FieldCode, FieldError
from smsqueue.models.limits import FzInteraction
from smsqueue.rules import limits
from smsqueue.rules.check import recipient_zone, zone
from smsqueue.rules.subjects import scope_of, subjects_of

CHANNELS = ("sms", "voice_message", "other")
interactions_t = FzInteraction.__table__


@dataclass(frozen=True, slots=True)
class Interaction:
    to: str | None  # E.164
    debtor: str | None
    at: datetime
    channel: str
    recipient_timezone: str | None = None


def errors(item: Interaction, current: datetime) -> list[FieldError]:
    """What makes an interaction unacceptable beyond its fields' shapes: it must name a number, a
    debtor or both, and must have happened (`at` not after the server's clock)."""
    out = []
    if item.to is None and item.debtor is None:
        out.append(FieldError("to", FieldCode.REQUIRED, "give to, debtor or both"))
    if item.at > current:
        out.append(FieldError("at", FieldCode.IN_FUTURE, "must not be in the future"))
    return out


def record(conn: Connection, entity: Any, item: Interaction, current: datetime) -> int:
    """Store the interaction and count it, in the caller's transaction; its id. The periods are the
    recipient's local ones (`recipient_timezone`, else the number's zone, else the entity's; a debtor
    without a number: the entity's zone)."""
    if item.to is not None:
        tz = recipient_zone(item.to, item.recipient_timezone, entity.timezone)
    else:
        tz = zone(item.recipient_timezone or entity.timezone)
    limits.count_now(conn, scope_of(entity), subjects_of(item.to, item.debtor), item.at, tz)
    return conn.execute(
        insert(interactions_t)
        .values(
            legal_entity_id=entity.id,
            recipient=item.to,
            debtor=item.debtor,
            at=item.at,
            channel=item.channel,
            created_at=current,
        )
        .returning(interactions_t.c.id)
    ).scalar_one()
