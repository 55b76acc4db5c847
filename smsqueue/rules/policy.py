"""The policy the send task asks before every send: allow, defer (to an exact moment) or reject.

`decide` runs inside the claim transaction, so what it counts and what the claim changes commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def decide_many(conn: Connection, items: Sequence[tuple[Any, Any]], at: datetime) -> list[Decision]:
    """The rules' answers for the messages a send task is about to claim, in order: each item is a
    (`messages` row, `legal_entities` row) pair. Runs in the claim transaction: whatever it counts and
    locks commits (or rolls back) with the claim itself. Locks it takes must be taken in one global
    order across the whole batch, so that concurrent batches cannot deadlock."""
    return [decide(conn, message, entity, at) for message, entity in items]


def decide(conn: Connection, message: Any, entity: Any, at: datetime) -> Decision:
    """The rules' answer for one message (a `messages` row) of `entity` (a `legal_entities` row)."""
    if not entity.active:
        return Reject(Reason.ENTITY_INACTIVE)
    return Allow()


def release(conn: Connection, message: Any) -> None:
    """Un-count a message that leaves `sending` before a provider accepted it."""
