"""The policy the send task asks before every send: allow, defer (to an exact moment) or reject.

`decide` runs inside the claim transaction, so what it counts and what the claim changes commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from smsqueue.statuses import Reason


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


Decision = Allow | Defer | Reject


def decide(conn: Connection, message: Any, entity: Any, at: datetime) -> Decision:
    """The rules' answer for one claimed message (a `messages` row) of `entity` (a `legal_entities` row)."""
    if not entity.active:
        return Reject(Reason.ENTITY_INACTIVE)
    return Allow()


def release(conn: Connection, message: Any) -> None:
    """Un-count a message that leaves `sending` before a provider accepted it."""
