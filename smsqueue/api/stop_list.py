"""An entity's stop list (API.md "Debtors and the interaction rules"): list, put and delete one number
or debtor, and a batch. Admin keys only: API.md gives entity keys no part in it (an entity key: 403).
The list is shared by the entities of one `fz.limit_group` (rules.stop_list.scopes_of)."""

from __future__ import annotations

import binascii
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import ValidationError
from sqlalchemy.orm import Session

from smsqueue.api.compliance_schemas import (
    REASONS_DOC,
    StopBatchIn,
    StopBatchItemIn,
    StopBatchOut,
    StopEntryIn,
    StopEntryOut,
    StopListOut,
    StopListQuery,
)
from smsqueue.api.http import json_object, query_args, require_admin, validate
from smsqueue.api.legal_entities import ADMIN_NOTE, BASE, ERRORS, TAG, entity_or_404
from smsqueue.api.schemas import ProblemOut, field_errors
from smsqueue.api.spec import route
from smsqueue.clock import iso, now
from smsqueue.db import session_scope
from smsqueue.errors import FieldCode, FieldError, not_found, validation_error
from smsqueue.message_fields import MAX_DEBTOR
from smsqueue.message_search import b64, invalid_cursor, is_cursor_int, unb64
from smsqueue.phones import PhoneError, normalize_phone
from smsqueue.rules import stop_list

bp = Blueprint("stop_list", __name__)
LIST = f"{BASE}/<code>/stop-list"
CURSOR_KIND = "s"
SCOPE_NOTE = (
    "Entities with the same `fz.limit_group` share one list (an entity in a group also keeps the entries "
    "made for it alone before it joined)."
)
PUT_RESPONSES = {200: StopEntryOut, 201: StopEntryOut, 400: ProblemOut, 404: ProblemOut, 415: ProblemOut}


def render_entry(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"to": row.value} if row.kind == stop_list.NUMBER else {"debtor": row.value}
    body.update(
        reason=row.reason,
        note=row.note,
        document=row.document,
        until=iso(row.until),
        active=stop_list.is_active(row.until, now()),
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
    )
    return body


def path_number(number: str) -> str:
    try:
        return normalize_phone(number)
    except PhoneError as exc:
        raise validation_error([FieldError("number", FieldCode.INVALID_PHONE, str(exc))]) from None


def path_debtor(debtor: str) -> str:
    if len(debtor) > MAX_DEBTOR:
        raise validation_error([FieldError("debtor", FieldCode.TOO_LONG, f"at most {MAX_DEBTOR} characters")])
    return debtor


def entry_in(kind: str, value: str, body: StopEntryIn) -> stop_list.EntryIn:
    return stop_list.EntryIn(kind, value, body.reason, body.note, body.document, body.until)


# --- the services (the API's views and the console's forms both call these) -----------------------------


def put_entry(session: Session, entity: Any, kind: str, value: str, body: StopEntryIn) -> tuple[Any, bool]:
    """Put a number or debtor (already checked: `path_number`, `path_debtor` or `StopBatchItemIn`) on
    the entity's list: (the row, whether it is new)."""
    return stop_list.put(session.connection(), entity, entry_in(kind, value, body), now())


def item_key(item: StopBatchItemIn) -> tuple[str, str]:
    """The kind and value of a validated batch item (exactly one of `to` and `debtor` is set)."""
    return (stop_list.NUMBER, item.to) if item.to is not None else (stop_list.DEBTOR, item.debtor or "")


def remove_entry(session: Session, entity: Any, kind: str, value: str) -> None:
    """Take a number or debtor off the entity's list; a 404 when it is not on it."""
    if not stop_list.remove(session.connection(), entity, kind, value):
        raise not_found(f"{kind} on the stop list")


def _put(code: str, kind: str, value: str) -> Response:
    body = validate(StopEntryIn, json_object())
    with session_scope() as session:
        entity = entity_or_404(session, code)
        row, created = put_entry(session, entity, kind, value, body)
        rendered = render_entry(row)
    response = jsonify(rendered)
    response.status_code = 201 if created else 200
    return response


def _delete(code: str, kind: str, value: str) -> Response:
    with session_scope() as session:
        remove_entry(session, entity_or_404(session, code), kind, value)
    return Response(status=204)


@route(
    bp,
    "GET",
    LIST,
    summary="List an entity's stop list",
    tag=TAG,
    query=StopListQuery,
    responses={200: StopListOut, 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Newest first; filters `to` (any common form), `debtor`, `reason`; `limit` 1 "
    f"to 500 (default 100) and the opaque `cursor` from `next_cursor` (null on the last page). Entries "
    f"whose `until` has passed stay listed with `active: false`. {SCOPE_NOTE}",
)
def list_stop_list(code: str) -> Response:
    require_admin()
    q = validate(StopListQuery, query_args(StopListQuery))
    after = decode_cursor(q.cursor) if q.cursor is not None else None
    with session_scope() as session:
        entity = entity_or_404(session, code)
        rows, last = stop_list.page(
            session.connection(),
            stop_list.scopes_of(entity),
            stop_list.ListFilter(to=q.to, debtor=q.debtor, reason=q.reason),
            after,
            q.limit,
        )
        items = [render_entry(r) for r in rows]
    return jsonify({"items": items, "next_cursor": b64([CURSOR_KIND, last]) if last is not None else None})


def decode_cursor(cursor: str) -> int:
    try:
        kind, last = unb64(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None
    if kind != CURSOR_KIND or not is_cursor_int(last):
        raise invalid_cursor()
    return last


@route(
    bp,
    "PUT",
    f"{LIST}/numbers/<number>",
    summary="Put a number on the stop list",
    tag=TAG,
    body=StopEntryIn,
    responses={**PUT_RESPONSES, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 201 when new, 200 when it updates the number's entry (every field is "
    f"replaced). The number is taken in any common form and stored as E.164 (`invalid_phone` on field "
    f"`number` otherwise). {REASONS_DOC} A message to a number on the list is `rejected` with `stop_list` "
    f"when a worker takes it, even if it was accepted before the entry was made. {SCOPE_NOTE}",
)
def put_number(code: str, number: str) -> Response:
    require_admin()
    return _put(code, stop_list.NUMBER, path_number(number))


@route(
    bp,
    "PUT",
    f"{LIST}/debtors/<debtor>",
    summary="Put a debtor on the stop list",
    tag=TAG,
    body=StopEntryIn,
    responses={**PUT_RESPONSES, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 201 when new, 200 when it updates the debtor's entry. Every message with "
    f"this `debtor`, to any number, is then `rejected` with `stop_list` when a worker takes it. "
    f"{REASONS_DOC} {SCOPE_NOTE}",
)
def put_debtor(code: str, debtor: str) -> Response:
    require_admin()
    return _put(code, stop_list.DEBTOR, path_debtor(debtor))


@route(
    bp,
    "DELETE",
    f"{LIST}/numbers/<number>",
    summary="Take a number off the stop list",
    tag=TAG,
    responses={204: "removed", 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 204; 404 when the number is not on the list.",
)
def delete_number(code: str, number: str) -> Response:
    require_admin()
    return _delete(code, stop_list.NUMBER, path_number(number))


@route(
    bp,
    "DELETE",
    f"{LIST}/debtors/<debtor>",
    summary="Take a debtor off the stop list",
    tag=TAG,
    responses={204: "removed", 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 204; 404 when the debtor is not on the list.",
)
def delete_debtor(code: str, debtor: str) -> Response:
    require_admin()
    return _delete(code, stop_list.DEBTOR, path_debtor(debtor))


@route(
    bp,
    "POST",
    f"{LIST}/batch",
    summary="Put up to 1000 numbers or debtors on the stop list",
    tag=TAG,
    body=StopBatchIn,
    responses={
        200: StopBatchOut,
        400: ProblemOut,
        404: ProblemOut,
        415: ProblemOut,
        422: ProblemOut,
        **ERRORS,
    },
    auth="admin",
    description=f"{ADMIN_NOTE} Each entry is `to` or `debtor` (exactly one) with the fields of a PUT. Valid "
    "entries are stored together, in one transaction; invalid ones are reported and not stored. "
    '`results` holds one item per entry, in order: `{"index", "status": "created" | "updated", "entry"}` '
    'or `{"index", "error": <problem, status 422>}`. An entry repeated in the batch is applied in order '
    "(the later one updates the earlier).",
)
def batch(code: str) -> Response:
    require_admin()
    body = validate(StopBatchIn, json_object())
    results: list[dict[str, Any] | None] = [None] * len(body.entries)
    valid: list[tuple[int, stop_list.EntryIn]] = []
    for index, raw in enumerate(body.entries):
        try:
            item = StopBatchItemIn.model_validate(raw)
        except ValidationError as exc:
            results[index] = {"index": index, "error": validation_error(field_errors(exc)).to_problem()}
            continue
        valid.append((index, entry_in(*item_key(item), item)))
    with session_scope() as session:
        entity = entity_or_404(session, code)
        stored = stop_list.put_many(session.connection(), entity, [e for _, e in valid], now())
        for (index, _), (row, created) in zip(valid, stored, strict=True):
            results[index] = {
                "index": index,
                "status": "created" if created else "updated",
                "entry": render_entry(row),
            }
    return jsonify({"results": results})
