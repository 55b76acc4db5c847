"""The audit log API: every change made through the admin API, newest first. Admin keys only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from smsqueue.api.http import query_args, require_admin, validate
from smsqueue.api.schemas import ProblemOut, Strict, Timestamp
from smsqueue.api.spec import route
from smsqueue.clock import iso
from smsqueue.db import session_scope
from smsqueue.message_search import b64, invalid_cursor, is_cursor_int, unb64
from smsqueue.models import AuditEntry

bp = Blueprint("audit", __name__)
TAG = "Audit"


class AuditQuery(Strict):
    object: str | None = Field(None, max_length=200, description="The object's code (or a key's id).")
    action: str | None = Field(None, max_length=64, examples=["legal_entity.update"])
    after: Timestamp | None = Field(None, description="Entries at or after this time.")
    before: Timestamp | None = Field(None, description="Entries before this time.")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=512, description="Opaque; from next_cursor.")


class AuditKeyOut(BaseModel):
    id: int | None = Field(description="null for a change made with the CLI.")
    name: str | None


class AuditEntryOut(BaseModel):
    at: datetime
    key: AuditKeyOut
    action: str
    object: str
    changes: dict[str, Any] = Field(description='{"field": [before, after]}; secrets as "***".')


class AuditListOut(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


def render(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "key": {"id": entry.key_id, "name": entry.key_name},
        "action": entry.action,
        "object": entry.object,
        "changes": entry.changes,
    }


@route(
    bp,
    "GET",
    "/api/v1/audit",
    summary="The audit log",
    tag=TAG,
    auth="admin",
    query=AuditQuery,
    responses={200: AuditListOut, 401: ProblemOut, 403: ProblemOut, 422: ProblemOut},
    description="Every change made through the admin API (providers, entities, their providers, send "
    "windows, FZ settings, keys), newest first. Actions are `<object kind>.<create|update|delete|"
    "revoke|link|unlink>`; `object` is the code (for a link `entity/provider`, for a key its id).",
)
def list_audit() -> Response:
    require_admin()
    query = validate(AuditQuery, query_args(AuditQuery))
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(query.limit + 1)
    if query.object is not None:
        stmt = stmt.where(AuditEntry.object == query.object)
    if query.action is not None:
        stmt = stmt.where(AuditEntry.action == query.action)
    if query.after is not None:
        stmt = stmt.where(AuditEntry.at >= query.after)
    if query.before is not None:
        stmt = stmt.where(AuditEntry.at < query.before)
    if query.cursor is not None:
        try:
            last = unb64(query.cursor)
        except (ValueError, TypeError, UnicodeDecodeError):
            raise invalid_cursor() from None
        if not is_cursor_int(last):  # JSON may say Infinity or 1e999
            raise invalid_cursor()
        stmt = stmt.where(AuditEntry.id < last)
    with session_scope() as session:
        rows = list(session.scalars(stmt))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return jsonify({"items": [render(r) for r in rows], "next_cursor": b64(rows[-1].id) if more else None})
