"""An entity's stop list from its page: add a number or debtor, take one off. Admin keys only, as in the
API (an entity key sees the list read-only; another entity is a 404). The add form is validated as an
item of the API's stop-list batch and stored by `api.stop_list.put_entry`, the removal by
`remove_entry`: the functions the API's PUT and DELETE call, so the checks, errors and writes are theirs."""

from __future__ import annotations

from flask import Response, abort, redirect, request, url_for

import smsqueue.console.strings as t
from smsqueue.api.compliance_schemas import StopBatchItemIn
from smsqueue.api.http import validate
from smsqueue.api.stop_list import item_key, path_debtor, path_number, put_entry, remove_entry
from smsqueue.console import session as console_session
from smsqueue.console import stop_forms
from smsqueue.console.blueprint import bp, error_page, principal
from smsqueue.console.pages_entities import page, visible_entity
from smsqueue.db import session_scope
from smsqueue.errors import ApiError
from smsqueue.rules import stop_list

ANCHOR = "stop-list"


@bp.post("/entities/<code>/stop-list/add")
def stop_add(code: str) -> Response | tuple[str, int]:
    who = principal()
    body = stop_forms.item_body(request.form, console_session.zone())
    try:
        with session_scope() as session:
            target = visible_entity(session, who, code)
            if not who.is_admin:
                abort(403)
            item = validate(StopBatchItemIn, body)
            put_entry(session, target, *item_key(item), item)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return page(code, which="stop", errors=stop_forms.errors_by_field(exc.errors or [])), 422
    return redirect(url_for("console.entity", code=code, saved="stop", _anchor=ANCHOR))


@bp.post("/entities/<code>/stop-list/remove")
def stop_remove(code: str) -> Response:
    who = principal()
    kind = request.form.get("kind", "")
    value = request.form.get("value", "")
    with session_scope() as session:
        target = visible_entity(session, who, code)
        if not who.is_admin:
            abort(403)
        if kind not in stop_forms.KINDS:
            abort(400)
        try:
            key = path_number(value) if kind == stop_list.NUMBER else path_debtor(value)
            remove_entry(session, target, kind, key)
        except ApiError as exc:
            if exc.status == 404:  # taken off a moment ago, in another tab or by the API
                return redirect(url_for("console.entity", code=code, saved="stop_gone", _anchor=ANCHOR))
            return error_page(400, t.stop_bad_key)
    return redirect(url_for("console.entity", code=code, saved="stop_removed", _anchor=ANCHOR))
