"""The messages API: accept one or a batch, read one, list with filters and a cursor, cancel."""

from __future__ import annotations

import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select, text

from smsqueue import entity_cache, ingest, jobs, logs, message_search, template_store
from smsqueue.api.http import json_object, principal, query_args, validate
from smsqueue.api.schemas import (
    BatchIn,
    BatchItemIn,
    BatchOut,
    MessageIn,
    MessageListOut,
    MessageListQuery,
    MessageOut,
    ProblemOut,
    field_errors,
)
from smsqueue.api.spec import route
from smsqueue.auth import Principal
from smsqueue.clock import iso, now
from smsqueue.db import transaction
from smsqueue.errors import ApiError, Code, FieldCode, FieldError, not_found, problem, validation_error
from smsqueue.ids import new_id
from smsqueue.message_search import (
    BIGINT_MAX,
    CHANGES,
    MessageFilter,
    b64,
    invalid_cursor,
    is_cursor_int,
    unb64,
)
from smsqueue.messages import NewMessage, NotCancelable, cancel, events_of, messages_t
from smsqueue.rules import identification
from smsqueue.segments import count_segments
from smsqueue.statuses import Status
from smsqueue.tasks.doorbell import ring_soon
from smsqueue.templates import TemplateError

bp = Blueprint("messages", __name__)
m = messages_t.c
TAG = "Messages"
MAX_IDEMPOTENCY_KEY = 255

IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Scoped to the entity: the same key with the same body returns the first message "
    "(200, Idempotent-Replayed: true); with another body, 409 idempotency_conflict.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}
ERRORS = {401: ProblemOut, 403: ProblemOut, 422: ProblemOut}


# --- rendering ----------------------------------------------------------------------------------------


def render(row: Any, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(row.id),
        "legal_entity": entity_cache.entity_code(row.legal_entity_id),
        "to": row.recipient,
        "text": row.text,
        "sender": row.sender,
        "status": row.status,
        "reason": row.reason,
        "provider": entity_cache.provider_code(row.provider_id),
        "provider_message_id": row.provider_message_id,
        "segments": row.segments,
        "encoding": row.encoding,
        "send_at": iso(row.send_at),
        "valid_until": iso(row.valid_until),
        "recipient_timezone": row.recipient_timezone,
        "callback_url": row.callback_url,
        "reference": row.reference,
        "template": row.template,
        "job": str(row.job_id) if row.job_id is not None else None,
        "debtor": row.debtor,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if events is not None:
        body["events"] = [{"status": e["status"], "at": iso(e["at"]), "reason": e["reason"]} for e in events]
    return body


def render_new(new: NewMessage, status: Status, entity_code: str, at: datetime) -> dict[str, Any]:
    """A message just stored, from what was stored: no second query."""
    stamp = iso(at)
    return {
        "id": str(new.id),
        "legal_entity": entity_code,
        "to": new.to,
        "text": new.text,
        "sender": new.sender,
        "status": status.value,
        "reason": None,
        "provider": None,
        "provider_message_id": None,
        "segments": new.segments,
        "encoding": new.encoding,
        "send_at": iso(new.send_at) if new.send_at else None,
        "valid_until": iso(new.valid_until) if new.valid_until else None,
        "recipient_timezone": new.recipient_timezone,
        "callback_url": new.callback_url,
        "reference": new.reference,
        "template": new.template,
        "job": str(new.job_id) if new.job_id is not None else None,
        "debtor": new.debtor,
        "created_at": stamp,
        "updated_at": stamp,
        "events": [{"status": status.value, "at": stamp, "reason": None}],
    }


# --- resolving the entity and provider ----------------------------------------------------------------


def resolve_entity(code: str | None, who: Principal, field: str = "legal_entity") -> entity_cache.EntityInfo:
    if code is None:
        if not who.is_admin and len(who.entity_ids) == 1:
            entity_id = next(iter(who.entity_ids))
            code = entity_cache.entity_code(entity_id)
        else:
            raise validation_error([FieldError(field, FieldCode.REQUIRED, "name the legal entity")])
    info = entity_cache.entity(code)
    if info is None:
        raise ApiError(404, Code.NOT_FOUND, f"legal entity {code!r} not found")
    if not who.may_use(info.id):
        raise ApiError(403, Code.FORBIDDEN, f"this key may not act for legal entity {code!r}")
    return info


def resolve_provider(
    code: str | None, entity: entity_cache.EntityInfo, field: str = "provider"
) -> int | None:
    if code is None:
        return None
    provider_id = entity.linked.get(code)
    if provider_id is None:
        fresh = entity_cache.entity(entity.code, fresh=True)  # linked a moment ago, elsewhere?
        provider_id = fresh.linked.get(code) if fresh else None
    if provider_id is None:
        raise validation_error(
            [
                FieldError(
                    field, FieldCode.PROVIDER_NOT_ALLOWED, f"provider {code!r} is not linked to this entity"
                )
            ]
        )
    return provider_id


def prepare(
    item: MessageIn, body: dict[str, Any], who: Principal, key: str | None
) -> tuple[ingest.Prepared, str]:
    entity = resolve_entity(item.legal_entity, who)
    provider_id = resolve_provider(item.provider, entity)
    text = item.text if item.template is None else template_text(entity.id, item.template, item.variables)
    text = final_text(text, entity)
    info = count_segments(text)
    new = NewMessage(
        id=new_id(),
        legal_entity_id=entity.id,
        to=item.to,
        text=text,
        template=item.template,
        segments=info.segments,
        encoding=info.encoding,
        sender=item.sender,
        requested_provider_id=provider_id,
        send_at=item.send_at,
        valid_until=item.valid_until,
        recipient_timezone=item.recipient_timezone,
        callback_url=item.callback_url or entity.callback_url,
        reference=item.reference,
        debtor=item.debtor,
        idempotency_key=key,
        request_hash=ingest.request_hash(entity.code, body) if key is not None else None,
        request_id=logs.request_id_var.get(),
    )
    return ingest.Prepared(new, key), entity.code


def final_text(text: str, entity: entity_cache.EntityInfo) -> str:
    """The text to store and send: 137-FZ identification applied (rules.identification), still within
    the length limit; a 422 on field `text` otherwise."""
    out, errors = identification.text_errors(text, identification.Identification.of(entity))
    if errors:
        raise validation_error(errors)
    return out


def stored_template(entity_id: int, code: str) -> str:
    """The text of the entity's template `code`, or 422 (field `template`, not_found)."""
    found = template_store.get(entity_id, code)
    if found is None:
        raise validation_error([FieldError("template", FieldCode.NOT_FOUND, f"no template {code!r}")])
    return found.text


def template_text(entity_id: int, code: str, variables: dict[str, str] | None) -> str:
    """The text of a message sent with a template: rendered, and held to the rules of `text`."""
    try:
        return ingest.rendered_text(stored_template(entity_id, code), variables or {})
    except TemplateError as exc:
        raise validation_error(exc.errors) from None


def later_checks(body: Any, invalid: set[str], who: Principal) -> list[FieldError]:
    """The entity and provider checks of `prepare`, for a body whose other fields failed validation."""
    if not isinstance(body, dict) or "legal_entity" in invalid:
        return []
    code = body.get("legal_entity")
    if code is None and not who.is_admin and len(who.entity_ids) == 1:
        code = entity_cache.entity_code(next(iter(who.entity_ids)))
    if code is None:
        return [FieldError("legal_entity", FieldCode.REQUIRED, "name the legal entity")]
    entity = entity_cache.entity(code) if isinstance(code, str) else None
    errors: list[FieldError] = []
    text = body.get("text")
    if entity is not None and who.may_use(entity.id) and "text" not in invalid and isinstance(text, str):
        try:
            final_text(text, entity)
        except ApiError as exc:
            errors += exc.errors or []
    provider = body.get("provider")
    if entity is None or not who.may_use(entity.id) or "provider" in invalid or not isinstance(provider, str):
        return errors  # an unknown or forbidden entity is its own answer (404, 403) once the fields are right
    try:
        resolve_provider(provider, entity)
    except ApiError as exc:
        errors += exc.errors or []
    return errors


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise validation_error(
            [
                FieldError(
                    "Idempotency-Key",
                    FieldCode.TOO_LONG if key else FieldCode.TOO_SHORT,
                    f"1 to {MAX_IDEMPOTENCY_KEY} characters",
                )
            ]
        )
    return key


# --- views --------------------------------------------------------------------------------------------


@route(
    bp,
    "POST",
    "/api/v1/messages",
    summary="Accept a message",
    tag=TAG,
    body=MessageIn,
    responses={202: MessageOut, 200: MessageOut, 404: ProblemOut, 409: ProblemOut, **ERRORS},
    extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
    description="202 with the stored message; with an Idempotency-Key seen before and the same body, "
    "200 with the first message and `Idempotent-Replayed: true`.",
)
def create_message() -> Response:
    who = principal()
    body = json_object()
    key = idempotency_key()
    item = validate(MessageIn, body, also=lambda data, invalid: later_checks(data, invalid, who))
    prepared, entity_code = prepare(item, body, who, key)
    at = now()
    (result,) = ingest.store([prepared], at)
    if isinstance(result, ingest.Conflict):
        raise ApiError(409, Code.IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used with another body")
    if result.replayed:
        response = jsonify(_load_one(result.pk))
        response.headers["Idempotent-Replayed"] = "true"
    else:
        if result.status is Status.QUEUED:
            ring_soon([result.pk])
        rendered = render_new(prepared.new, result.status, entity_code, at)
        response = Response(json.dumps(rendered, ensure_ascii=False), status=202, mimetype="application/json")
        response.headers["Location"] = f"/api/v1/messages/{rendered['id']}"
        return response
    response.headers["Location"] = f"/api/v1/messages/{result.id}"
    return response


@route(
    bp,
    "POST",
    "/api/v1/messages/batch",
    summary="Accept up to 1000 messages",
    tag=TAG,
    body=BatchIn,
    responses={200: BatchOut, **ERRORS},
    description="Valid items are stored together; invalid ones are reported per item and not stored: an "
    "item's `error` is a problem with `status` 422 (invalid fields), 404 (unknown entity), 403 (an entity "
    "this key may not act for) or 409 (an `idempotency_key` used before with another body). An item that "
    "repeats an earlier one's `idempotency_key` and body answers that message's id with `replayed: true`.",
)
def create_batch() -> Response:
    who = principal()
    body = json_object()
    batch = validate(BatchIn, body)
    at = now()
    results: list[dict[str, Any] | None] = [None] * len(batch.messages)
    prepared: list[tuple[int, ingest.Prepared]] = []
    for index, raw in enumerate(batch.messages):
        try:
            item = BatchItemIn.model_validate(raw)
            p, _ = prepare(item, raw, who, item.idempotency_key)
            prepared.append((index, p))
        except ValidationError as exc:
            errors = field_errors(exc)
            errors += later_checks(raw, {e.field for e in errors}, who)
            results[index] = _item_error(index, 422, Code.VALIDATION_ERROR, errors=errors)
        except ApiError as exc:
            results[index] = _item_error(index, exc.status, exc.code, exc.detail, exc.errors)
    stored = ingest.store([p for _, p in prepared], at) if prepared else []
    to_ring: list[int] = []
    for (index, _), result in zip(prepared, stored, strict=True):
        if isinstance(result, ingest.Conflict):
            results[index] = _item_error(
                index, 409, Code.IDEMPOTENCY_CONFLICT, "idempotency_key used with another body"
            )
            continue
        results[index] = {"index": index, "id": str(result.id), "status": result.status.value}
        if result.replayed:
            results[index]["replayed"] = True  # type: ignore[index]
        elif result.status is Status.QUEUED:
            to_ring.append(result.pk)
    if to_ring:
        ring_soon(to_ring)
    return jsonify({"results": results})


def _item_error(
    index: int, status: int, code: str, detail: str | None = None, errors: list[FieldError] | None = None
) -> dict[str, Any]:
    if errors and detail is None:
        detail = f"{len(errors)} field{'s are' if len(errors) != 1 else ' is'} invalid"
    return {"index": index, "error": problem(status, code, detail, errors=errors)}


def _message_pk(message_id: str, who: Principal) -> Any:
    try:
        ident = uuid.UUID(message_id)
    except ValueError:
        raise not_found("message") from None
    with transaction() as conn:
        row = conn.execute(select(messages_t).where(m.id == ident)).first()
    if row is None or not who.may_use(row.legal_entity_id):
        raise not_found("message")  # another entity's message is not revealed
    return row


def _load_one(pk: int) -> dict[str, Any]:
    with transaction() as conn:
        row = conn.execute(select(messages_t).where(m.pk == pk)).one()
        events = events_of(conn, [pk])[pk]
    return render(row, events)


@route(
    bp,
    "GET",
    "/api/v1/messages/<message_id>",
    summary="Read a message with its events",
    tag=TAG,
    responses={200: MessageOut, 404: ProblemOut, 401: ProblemOut},
)
def get_message(message_id: str) -> Response:
    row = _message_pk(message_id, principal())
    with transaction() as conn:
        events = events_of(conn, [row.pk])[row.pk]
    return jsonify(render(row, events))


@route(
    bp,
    "POST",
    "/api/v1/messages/<message_id>/cancel",
    summary="Cancel a queued or scheduled message",
    tag=TAG,
    responses={200: MessageOut, 404: ProblemOut, 409: ProblemOut, 401: ProblemOut},
)
def cancel_message(message_id: str) -> Response:
    row = _message_pk(message_id, principal())
    try:
        with transaction() as conn:
            cancel(conn, row.pk)
    except NotCancelable as exc:
        raise ApiError(
            409,
            Code.NOT_CANCELABLE,
            f"the message is {exc.status}; only queued or scheduled messages can be canceled",
        ) from None
    return jsonify(_load_one(row.pk))


# --- listing ------------------------------------------------------------------------------------------


def is_change_cursor(cursor: str | None) -> bool:
    """Whether a cursor came from an updated_after listing (polling goes on with it alone)."""
    if cursor is None:
        return False
    try:
        value = unb64(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(value, list) and value[:1] == [CHANGES]


# --- updated_after: changes in commit-safe order ------------------------------------------------------
#
# A poller must see every change once: never skip one, never repeat one. Ordering by a time or an id
# stamped while the writing transaction runs is not enough, because transactions commit in another order
# than they stamp: a poll can list a change committed at once, move its cursor past it, and never see an
# earlier-stamped change that commits a moment later.
#
# So each message carries the position of its last change, `change_seq`, kept by the database
# (migrations 0003 and 0015: a default and triggers) on every insert and every status change (a move of
# `event_seq`; other updates of the row do not count), and the listing is ordered by (change_seq, pk):
#
# - PostgreSQL: change_seq is the id of the writing transaction (pg_current_xact_id: 64-bit, never wraps),
#   and a poll lists only positions below H = pg_snapshot_xmin(pg_current_snapshot()), the oldest
#   transaction still running. Every transaction below H has ended, so the set of changes below H is
#   final: none can appear there later. Any change not yet committed, or made later, belongs to a
#   transaction >= H, which is beyond every cursor this poll hands out (the last row listed, below H; or
#   (H, 0) when nothing is left). Hence no skip. A change has one position, listed once, and cursors only
#   move forward: no repeat. A message that changes again moves to a new, later position and is listed
#   again there, with its new state (changes in between are folded into the message's current state).
#   The price: a transaction that stays open delays (never loses) changes made after it began.
# - SQLite: writers are serialised (BEGIN IMMEDIATE), so a counter taken inside the write transaction
#   (highest + 1) already follows commit order, and every committed position is final: no horizon.
#
# The cursor is the position of the last change listed; `updated_after` stays a filter on updated_at (a
# poller sends it again with every cursor; without it a changes cursor is refused as invalid).


def encode_change_cursor(position: int, pk: int) -> str:
    return b64([CHANGES, position, pk])


def decode_change_cursor(cursor: str) -> tuple[int, int]:
    try:
        kind, position, pk = unb64(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None
    if kind != CHANGES or not (is_cursor_int(position) and is_cursor_int(pk)):
        raise invalid_cursor()
    return position, pk


def _change_horizon(conn: Any) -> int | None:
    """Positions below this are final (PostgreSQL); None: every committed position is (SQLite)."""
    if conn.dialect.name != "postgresql":
        return None
    return int(
        conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar_one()
    )


def _first_position(conn: Any, updated_after: datetime, horizon: int | None) -> tuple[int, int]:
    """Where a first page (no cursor) starts: at the lowest position of a message changed after
    `updated_after` (an index-only range of ix_messages_updated), not at the first position of the
    whole history. Never past the horizon: a change still being written lands at or above it, and may
    be stamped after `updated_after` too."""
    lowest = conn.execute(select(func.min(m.change_seq)).where(m.updated_at > updated_after)).scalar()
    if horizon is not None:
        return (lowest, 0) if lowest is not None and lowest < horizon else (horizon, 0)
    if lowest is not None:
        return lowest, 0
    # SQLite: every committed position is final, and none changed after updated_after: start past them.
    return conn.execute(select(func.coalesce(func.max(m.change_seq), 0))).scalar_one(), BIGINT_MAX


@route(
    bp,
    "GET",
    "/api/v1/messages",
    summary="List messages",
    tag=TAG,
    query=MessageListQuery,
    responses={200: MessageListOut, **ERRORS},
    description="Newest first; `created_after` and `created_before` are exclusive. With `updated_after`: "
    "messages changed after that time, by last change, oldest first, and `next_cursor` is never null: it "
    "is where the next poll starts, even when no change is left. Poll on with the returned cursor (alone, "
    "or with the same `updated_after`) and you see every change once, never skipped and never repeated, "
    "even for "
    "changes committed late by concurrent writers (a change is listed only once no earlier one can still "
    "appear, so a long-running transaction may delay, but never hide, later changes). A message that "
    "changed several times between two polls is listed once, with its current state; it is listed again "
    "after each later change.",
)
def list_messages() -> Response:
    who = principal()
    q = validate(MessageListQuery, query_args(MessageListQuery))
    entity_ids: list[int] | None = None
    if q.legal_entity is not None:
        info = entity_cache.entity(q.legal_entity)
        if info is None or not who.may_use(info.id):
            empty = None if q.updated_after is None else q.cursor or encode_change_cursor(0, 0)
            return jsonify({"items": [], "next_cursor": empty})
        entity_ids = [info.id]
    elif not who.is_admin:
        entity_ids = sorted(who.entity_ids)
    job_id = None
    if q.job is not None:
        job_id = _job_id(q.job, who)
        if job_id is None:
            empty = None if q.updated_after is None else q.cursor or encode_change_cursor(0, 0)
            return jsonify({"items": [], "next_cursor": empty})
    conditions = message_search.conditions(
        MessageFilter(
            entity_ids=entity_ids,
            statuses=[s.value for s in q.status or ()],
            to=q.to,
            reference=q.reference,
            debtor=q.debtor,
            created_after=q.created_after,
            created_before=q.created_before,
            job_id=job_id,
        )
    )
    if q.updated_after is not None or is_change_cursor(q.cursor):
        return _list_changes(conditions, q)
    with transaction() as conn:
        page = message_search.newest_first(conn, conditions, q.cursor, q.limit)
    return jsonify({"items": [render(r) for r in page.rows], "next_cursor": page.next_cursor})


def _job_id(value: str, who: Principal) -> uuid.UUID | None:
    """The `job` filter's job, if it is one this key may read (else the list is empty)."""
    try:
        ident = uuid.UUID(value)
    except ValueError:
        raise validation_error([FieldError("job", FieldCode.INVALID_VALUE, "not a job id")]) from None
    job = jobs.find(ident)
    return ident if job is not None and who.may_use(job.legal_entity_id) else None


def _list_changes(conditions: list[Any], q: MessageListQuery) -> Response:
    """Changes after the cursor (or all since updated_after), in (change_seq, pk) order; see above. The
    cursor alone is enough to poll on (it holds the position); updated_after, when sent, filters too."""
    if q.updated_after is not None:
        conditions = [*conditions, m.updated_at > q.updated_after]
    with transaction() as conn:
        horizon = _change_horizon(conn)
        if q.cursor is not None:
            position, pk = decode_change_cursor(q.cursor)
        else:
            assert q.updated_after is not None
            position, pk = _first_position(conn, q.updated_after, horizon)
        conditions.append(or_(m.change_seq > position, and_(m.change_seq == position, m.pk > pk)))
        if horizon is not None:
            conditions.append(m.change_seq < horizon)
        stmt = select(messages_t).where(*conditions).order_by(m.change_seq, m.pk).limit(q.limit)
        rows = conn.execute(stmt).all()
    if len(rows) == q.limit:
        cursor = encode_change_cursor(rows[-1].change_seq, rows[-1].pk)
    elif horizon is not None:
        # Everything below the horizon has been listed: the next poll starts there.
        cursor = encode_change_cursor(max(horizon, position), 0 if horizon > position else pk)
    elif rows:
        cursor = encode_change_cursor(rows[-1].change_seq, rows[-1].pk)
    else:
        cursor = encode_change_cursor(position, pk)
    return jsonify({"items": [render(r) for r in rows], "next_cursor": cursor})
