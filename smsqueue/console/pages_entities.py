"""Entities: the list (only the key's own for an entity key) and an entity's page with its send window,
230-FZ settings and providers in the order the sender tries them. An admin key edits them there: each
form becomes a partial PATCH body, validated by the API's `EntityPatch` and applied by the very function
the API's PATCH calls (`legal_entities.edit_entity`), so the checks, the errors and the writes are the
API's. An entity key sees its entities read-only (the API lets only admin keys change them); another
entity is a 404, whatever the key. The page also lists the entity's stop list (`stop_forms`); its add
and remove forms are in `pages_stop_list`."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import smsqueue.console.strings as t
from smsqueue.api.http import validate
from smsqueue.api.legal_entities import edit_entity, render_entity
from smsqueue.api.rules_schemas import EntityPatch
from smsqueue.auth import Principal
from smsqueue.console import entity_forms, stop_forms
from smsqueue.console.blueprint import bp, principal
from smsqueue.db import session_scope
from smsqueue.errors import ApiError
from smsqueue.models import EntityProvider, LegalEntity
from smsqueue.rules import admin

SAVED = {
    "window": t.saved_window,
    "fz": t.saved_fz,
    "providers": t.saved_providers,
    "stop": t.saved_stop,
    "stop_removed": t.stop_removed,
    "stop_gone": t.stop_gone,
}


def visible_entity(session: Session, who: Principal, code: str, *, for_update: bool = False) -> LegalEntity:
    """The entity `code` if the key may see it; a 404 otherwise (another entity's is not told apart from
    one that does not exist)."""
    entity = admin.entity_for_update(session, code) if for_update else admin.entity_by_code(session, code)
    if entity is None or not who.may_use(entity.id):
        abort(404)
    return entity


@bp.get("/entities")
def entities() -> str:
    who = principal()
    with session_scope() as session:
        e = LegalEntity
        query = select(e).order_by(e.code)
        if not who.is_admin:
            query = query.where(e.id.in_(sorted(who.entity_ids)))
        found = list(session.scalars(query))
        counts = dict(
            session.execute(
                select(EntityProvider.legal_entity_id, func.count())
                .where(EntityProvider.legal_entity_id.in_([x.id for x in found]))
                .group_by(EntityProvider.legal_entity_id)
            ).all()
        )
        rows = [
            {
                "code": x.code,
                "name": x.name,
                "active": x.active,
                "timezone": x.timezone,
                "window": (x.send_window_from, x.send_window_to),
                "fz": x.fz_enabled,
                "providers": counts.get(x.id, 0),
            }
            for x in found
        ]
    return render_template("console/entities.html", rows=rows)


@bp.get("/entities/<code>")
def entity(code: str) -> str:
    return page(code)


@bp.post("/entities/<code>/<which>")
def edit(code: str, which: str) -> Response | tuple[str, int]:
    who = principal()
    if which not in entity_forms.FORMS:
        abort(404)
    body = entity_forms.body_of(which, request.form)
    try:
        with session_scope() as session:
            target = visible_entity(session, who, code, for_update=True)
            if not who.is_admin:
                abort(403)
            edit_entity(session, target, validate(EntityPatch, body.data))
    except ApiError as exc:
        if exc.status != 422:
            raise
        errors = entity_forms.errors_by_field(exc.errors or [], body)
        return page(code, which=which, errors=errors), 422
    return redirect(url_for("console.entity", code=code, saved=which, _anchor=which))


def page(code: str, *, which: str | None = None, errors: dict[str, str] | None = None) -> str:
    """The entity page; after a refused form, that form shows what was typed and the errors."""
    who = principal()
    with session_scope() as session:
        target = visible_entity(session, who, code)
        rendered = render_entity(session, target)
        meta = {"id": target.id, "created_at": target.created_at, "updated_at": target.updated_at}
        provider_enabled = {p.code: p.enabled for p in admin.list_providers(session)}  # a small table
        stop = stop_forms.listing(session, target, request.args)
    values = entity_forms.values_of(rendered)
    rows = entity_forms.link_rows(rendered["providers"])
    if which is not None:
        values.update(entity_forms.submitted_values(which, request.form))
        if which == "providers":
            rows = entity_forms.submitted_rows(request.form)
    linked = {row["provider"] for row in rows}
    context: dict[str, Any] = {
        "entity": rendered,
        "meta": meta,
        "values": values,
        "rows": rows,
        "provider_enabled": provider_enabled,
        "addable": sorted(c for c in provider_enabled if c not in linked) if who.is_admin else [],
        "errors": errors or {},
        "failed": which,
        "saved": SAVED.get(request.args.get("saved", "")) if which is None else None,
        "editable": who.is_admin,
        "stop": stop,
        "stop_values": stop_forms.add_values(request.form if which == "stop" else None),
        "stop_reasons": [(r, t.stop_reason(r)) for r in stop_forms.REASONS],
    }
    return render_template("console/entity.html", **context)
