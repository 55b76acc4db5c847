"""An entity's templates: the list with each one's placeholders, and for an admin key forms to add one,
change its text and description, and delete it. The forms' bodies go through the API's `TemplateIn` and
`TemplatePut` and are stored by `api.templates.add_template`, `change_template` and `drop_template`, the
functions the API's POST, PUT and DELETE call, so the checks, errors and audit entries are theirs. An
entity key reads its own entities' templates (as in the API); another entity is a 404."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for

import smsqueue.console.strings as t
from smsqueue import template_store
from smsqueue.api.http import validate
from smsqueue.api.templates import (
    TemplateIn,
    TemplatePut,
    add_template,
    change_template,
    drop_template,
)
from smsqueue.api.templates import render_template as render_item
from smsqueue.console.blueprint import bp, principal
from smsqueue.console.pages_entities import visible_entity
from smsqueue.db import session_scope
from smsqueue.errors import ApiError

SAVED = {"added": t.template_added, "changed": t.template_changed, "deleted": t.template_deleted}


def _entity_id(code: str, *, write: bool) -> int:
    who = principal()
    with session_scope() as session:
        entity_id = visible_entity(session, who, code).id
    if write and not who.is_admin:
        abort(403)
    return entity_id


def _body(form: Any, *, with_code: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": form.get("text", ""),
        "description": form.get("description", "").strip() or None,
    }
    if with_code:
        body["code"] = form.get("code", "").strip()
    return body


def _errors(exc: ApiError) -> dict[str, str]:
    if exc.status == 409:
        return {"code": t.template_duplicate}
    out: dict[str, str] = {}
    for error in exc.errors or []:
        out.setdefault(error.field.split(".")[0] or "text", t.field_error(error.code, error.message))
    return out


@bp.get("/entities/<code>/templates")
def templates(code: str) -> str:
    return _page(code)


def _page(code: str, *, failed: str | None = None, errors: dict[str, str] | None = None) -> str:
    who = principal()
    entity_id = _entity_id(code, write=False)
    items = [render_item(r) for r in template_store.list_of(entity_id)]
    typed = dict(request.form) if failed is not None else {}
    return render_template(
        "console/templates.html",
        code=code,
        items=items,
        editable=who.is_admin,
        failed=failed,
        errors=errors or {},
        typed=typed,
        saved=SAVED.get(request.args.get("saved", "")) if failed is None else None,
    )


@bp.post("/entities/<code>/templates")
def template_add(code: str) -> Response | tuple[str, int]:
    entity_id = _entity_id(code, write=True)
    try:
        add_template(entity_id, validate(TemplateIn, _body(request.form, with_code=True)))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return _page(code, failed="", errors=_errors(exc)), 422
    return redirect(url_for("console.templates", code=code, saved="added"))


@bp.post("/entities/<code>/templates/<template>")
def template_change(code: str, template: str) -> Response | tuple[str, int]:
    entity_id = _entity_id(code, write=True)
    try:
        if "delete" in request.form:
            drop_template(entity_id, template)
            return redirect(url_for("console.templates", code=code, saved="deleted"))
        change_template(entity_id, template, validate(TemplatePut, _body(request.form, with_code=False)))
    except ApiError as exc:
        if exc.status == 404:
            abort(404)
        if exc.status != 422:
            raise
        return _page(code, failed=template, errors=_errors(exc)), 422
    return redirect(url_for("console.templates", code=code, saved="changed", _anchor=f"t-{template}"))
