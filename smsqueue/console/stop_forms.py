"""The entity page's stop list: its filters and page (read with the API's `StopListQuery`, cursor and
`rules.stop_list.page`), and the add form as the body of one item of the API's stop-list batch
(`StopBatchItemIn`: `to` or `debtor`, reason, note, document, until), so the API's checks and field
codes apply and land next to the field that caused them. No rule is checked here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import smsqueue.console.strings as t
from smsqueue.api.compliance_schemas import StopListQuery
from smsqueue.api.http import validate
from smsqueue.api.stop_list import CURSOR_KIND, decode_cursor, render_entry
from smsqueue.console.timefmt import from_input
from smsqueue.errors import ApiError, FieldError
from smsqueue.message_search import b64
from smsqueue.rules import stop_list

PAGE_SIZE = 20
FILTERS = ("stop_to", "stop_debtor", "stop_reason")  # query parameters of the entity page
ADD_FIELDS = ("stop.kind", "stop.value", "stop.reason", "stop.note", "stop.document", "stop.until")
KINDS = (stop_list.NUMBER, stop_list.DEBTOR)
REASONS = stop_list.REASONS
DEFAULTS = {"stop.kind": stop_list.NUMBER, "stop.reason": "refused"}
# The API's field of a batch item -> the add form's field.
_FIELD = {"to": "stop.value", "debtor": "stop.value", "": "stop.value"}


def listing(session: Session, entity: Any, args: Mapping[str, str]) -> dict[str, Any]:
    """The filters as typed, their errors, a page of entries (rendered as the API renders them) and the
    cursor of the next page."""
    typed = {name: (args.get(name) or "").strip()[:128] for name in (*FILTERS, "stop_cursor")}
    query = {name.removeprefix("stop_"): value for name, value in typed.items() if value}
    out: dict[str, Any] = {"filters": typed, "errors": {}, "items": [], "next_cursor": None, "notice": None}
    try:
        q = validate(StopListQuery, {**query, "limit": PAGE_SIZE})
        after = decode_cursor(q.cursor) if q.cursor is not None else None
    except ApiError as exc:
        errors = {f"stop_{e.field}": t.field_error(e.code, e.message) for e in exc.errors or []}
        if set(errors) == {"stop_cursor"}:  # a stale link: start from the newest
            return {**listing(session, entity, {**typed, "stop_cursor": ""}), "notice": t.invalid_cursor}
        out["errors"] = errors
        return out
    rows, last = stop_list.page(
        session.connection(),
        stop_list.scopes_of(entity),
        stop_list.ListFilter(to=q.to, debtor=q.debtor, reason=q.reason),
        after,
        PAGE_SIZE,
    )
    out["items"] = [render_entry(r) for r in rows]
    out["next_cursor"] = b64([CURSOR_KIND, last]) if last is not None else None
    return out


def item_body(form: Mapping[str, str], zone: ZoneInfo) -> dict[str, Any]:
    """The add form as a batch item's JSON body. `until` is read in the operator's zone; what cannot be
    read goes to the model as typed, for it to refuse with the API's code."""
    kind = form.get("stop.kind", "")
    value = form.get("stop.value", "").strip()
    body: dict[str, Any] = {"debtor" if kind == stop_list.DEBTOR else "to": value}
    body["reason"] = form.get("stop.reason", "")
    for name in ("note", "document"):
        text = form.get(f"stop.{name}", "").strip()
        body[name] = text or None
    until = form.get("stop.until", "").strip()
    if until:
        try:
            body["until"] = from_input(until, zone).isoformat()
        except ValueError:
            body["until"] = until
    return body


def errors_by_field(errors: list[FieldError]) -> dict[str, str]:
    """The API's field errors of a batch item as the add form's field -> words (the first of a field)."""
    out: dict[str, str] = {}
    for error in errors:
        name = _FIELD.get(error.field, f"stop.{error.field}")
        out.setdefault(name, t.field_error(error.code, error.message))
    return out


def add_values(form: Mapping[str, str] | None) -> dict[str, str]:
    """The add form's values: the defaults, or what a refused form had typed."""
    if form is None:
        return dict(DEFAULTS)
    return {name: form.get(name, "") for name in ADD_FIELDS}
