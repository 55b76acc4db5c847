"""Providers, for admin keys only (as in the API): the list, a provider's page with its settings masked
as the API masks them, its balance (fetched by console.js from `…/balance` after the page has loaded: a
provider may take its whole timeout to answer, and the page must not wait for it), and the form that
enables or disables it through the API's own PATCH function (`providers.edit_provider`)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

import smsqueue.console.strings as t
from smsqueue.api.providers import edit_provider, provider_balance, render
from smsqueue.console.blueprint import bp, principal
from smsqueue.db import session_scope
from smsqueue.errors import ApiError
from smsqueue.models import EntityProvider, LegalEntity
from smsqueue.rules import admin


def _admin_only() -> None:
    if not principal().is_admin:
        abort(404)  # an entity key is not told what providers there are


@bp.get("/providers")
def providers() -> str:
    _admin_only()
    with session_scope() as session:
        rows = [render(p) for p in admin.list_providers(session)]
    return render_template("console/providers.html", rows=rows)


@bp.get("/providers/<code>")
def provider(code: str) -> str:
    _admin_only()
    with session_scope() as session:
        row = admin.provider_by_code(session, code)
        if row is None:
            abort(404)
        shown: dict[str, Any] = render(row)
        used_by = list(
            session.execute(
                select(LegalEntity.code, EntityProvider.priority, EntityProvider.enabled)
                .join(EntityProvider, EntityProvider.legal_entity_id == LegalEntity.id)
                .where(EntityProvider.provider_id == row.id)
                .order_by(LegalEntity.code)
            ).all()
        )
    saved = {"on": t.saved_enabled, "off": t.saved_disabled}.get(request.args.get("saved", ""))
    return render_template("console/provider.html", p=shown, used_by=used_by, saved=saved)


@bp.post("/providers/<code>/state")
def provider_state(code: str) -> Response:
    _admin_only()
    enabled = request.form.get("enabled") == "true"
    with session_scope() as session:
        try:
            edit_provider(session, code, {"enabled": enabled})
        except ApiError as exc:
            abort(exc.status)  # 404: gone meanwhile (the body itself cannot be invalid)
    return redirect(url_for("console.provider", code=code, saved="on" if enabled else "off"))


@bp.get("/providers/<code>/balance")
def provider_balance_part(code: str) -> Response:
    """The balance as JSON for console.js: {"text": ...} in words, {"error": ...} when the provider
    failed (answered 200 either way: it is the page's content, not this request's failure)."""
    _admin_only()
    try:
        found = provider_balance(code)
    except ApiError as exc:
        if exc.status == 404:
            abort(404)
        return jsonify({"error": t.balance_failed.format(detail=exc.detail or exc.code)})
    amount = f"{found['balance']:,.2f}".replace(",", " ").replace(".", ",")
    return jsonify({"text": t.balance_value.format(amount=amount, currency=found["currency"])})
