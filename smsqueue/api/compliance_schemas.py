"""Request and response models of the stop list and the evidence (API.md "Debtors and the interaction
rules"). Field errors carry our stable codes, like every other model."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from smsqueue.api.schemas import EventOut, MessageIn, Strict, Timestamp
from smsqueue.errors import FieldCode
from smsqueue.message_fields import MAX_DEBTOR

StopReason = Literal["refused", "representative_only", "protected", "wrong_number", "other"]
MAX_NOTE = 2000
MAX_DOCUMENT = 500
MAX_BATCH = 1000

REASONS_DOC = (
    "`refused`: the debtor refused interaction (230-FZ art. 8); `representative_only`: interaction only "
    "through the representative (art. 8), so the debtor's own numbers are stopped; `protected`: art. 7 "
    "part 1 (a bankruptcy case, incapacity, in-patient care, group I disability, a minor); "
    "`wrong_number`: the number is not the debtor's; `other`."
)


def check_debtor(value: str) -> str:
    if not 1 <= len(value) <= MAX_DEBTOR:
        raise PydanticCustomError(
            FieldCode.TOO_LONG if value else FieldCode.TOO_SHORT, f"1 to {MAX_DEBTOR} characters"
        )
    return value


class StopEntryIn(Strict):
    reason: StopReason = Field(description=REASONS_DOC)
    note: str | None = Field(None, max_length=MAX_NOTE, description="Free text, e.g. how the refusal came.")
    document: str | None = Field(
        None, max_length=MAX_DOCUMENT, description="A reference to the document behind it (number, URL)."
    )
    until: Timestamp | None = Field(
        None, description="Null: for good. Once passed, the entry no longer stops messages (it stays listed)."
    )


class StopBatchItemIn(StopEntryIn):
    to: str | None = Field(None, max_length=64, description="A number, any common form (stored E.164).")
    debtor: str | None = Field(None, description=f"A debtor id, 1 to {MAX_DEBTOR} characters.")

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else MessageIn._to(value)

    @field_validator("debtor")
    @classmethod
    def _debtor(cls, value: str | None) -> str | None:
        return None if value is None else check_debtor(value)

    @model_validator(mode="after")
    def _one_key(self) -> StopBatchItemIn:
        if (self.to is None) == (self.debtor is None):
            raise PydanticCustomError(FieldCode.REQUIRED, "give exactly one of to and debtor")
        return self


class StopBatchIn(Strict):
    entries: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH} entries, each `to` or `debtor` with the fields of a PUT.",
        json_schema_extra={
            "items": {"anyOf": [{"$ref": "#/components/schemas/StopBatchItemIn"}, {"type": "object"}]}
        },
    )


class StopListQuery(Strict):
    to: str | None = Field(None, max_length=64, description="Only this number (any common form).")
    debtor: str | None = Field(None, max_length=MAX_DEBTOR, description="Only this debtor.")
    reason: StopReason | None = None
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512, description="Opaque; from next_cursor.")

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else MessageIn._to(value)


class StopEntryOut(BaseModel):
    to: str | None = Field(None, description="Present on a number's entry (E.164).")
    debtor: str | None = Field(None, description="Present on a debtor's entry.")
    reason: StopReason
    note: str | None
    document: str | None
    until: datetime | None
    active: bool = Field(description="Whether it stops messages now (`until` null or not yet passed).")
    created_at: datetime
    updated_at: datetime


class StopListOut(BaseModel):
    items: list[StopEntryOut]
    next_cursor: str | None


class StopBatchResultOut(BaseModel):
    index: int
    status: Literal["created", "updated"] | None = None
    entry: StopEntryOut | None = None
    error: Any | None = Field(None, description="A problem (status 422) for an invalid entry.")


class StopBatchOut(BaseModel):
    results: list[StopBatchResultOut]


# --- evidence -----------------------------------------------------------------------------------------


class CountsSeenOut(BaseModel):
    day: int
    week: int
    month: int


class DecisionOut(BaseModel):
    at: datetime
    outcome: Literal["allowed", "deferred", "rejected"]
    reasons: list[str]
    counts: dict[str, int] | None = Field(
        description="The FZ counts it judged by, before this message counted (null: not looked at, e.g. "
        "a stop-list rejection)."
    )
    until: datetime | None = Field(description="A deferred message's new time.")


class HistoryMessageOut(BaseModel):
    id: str
    to: str
    debtor: str | None
    text: str
    sender: str | None
    provider: str | None
    provider_message_id: str | None
    status: str
    reason: str | None
    created_at: datetime
    events: list[EventOut]
    decisions: list[DecisionOut] = Field(description="Every decision of the rules step, oldest first.")


class HistoryOut(BaseModel):
    legal_entity: str
    debtor: str | None = None
    to: str | None = None
    items: list[HistoryMessageOut]
    interactions: list[dict[str, Any]] = Field(
        description="Interactions reported through POST .../interactions, oldest first."
    )
