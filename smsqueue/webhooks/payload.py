"""The body of a status webhook: its schema (for the OpenAPI document) and its bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from smsqueue.clock import iso
from smsqueue.statuses import Status


class WebhookEvent(BaseModel):
    """The body of a status webhook: one POST per status a message takes."""

    event: Literal["message.status"] = "message.status"
    id: str = Field(description="The message's id (UUID).")
    legal_entity: str = Field(description="The entity's code.")
    reference: str | None = Field(description="The caller's own id of the message, if it gave one.")
    status: Status
    reason: str | None = Field(description="Why it took this status (see the reason codes), or null.")
    at: datetime = Field(description="When it took this status (UTC).")
    sequence: int = Field(
        ge=1,
        description="1 for the first status, one more for each change: the event's place in the message's "
        "events. Keep the highest seen per message id and drop anything not above it.",
    )


def body_of(
    message_id: Any, entity_code: str, reference: str | None, status: str, reason: str | None,
    at: datetime, sequence: int,
) -> bytes:  # fmt: skip
    """The raw body, exactly as signed and sent (field order as in the contract)."""
    body = {
        "event": "message.status",
        "id": str(message_id),
        "legal_entity": entity_code,
        "reference": reference,
        "status": status,
        "reason": reason,
        "at": iso(at),
        "sequence": sequence,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
