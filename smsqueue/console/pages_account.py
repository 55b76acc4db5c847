"""Signing in and out, and the operator's settings (their time zone)."""

from __future__ import annotations

from flask import Response, redirect, render_template, request, url_for

import smsqueue.console.strings as t
from smsqueue.console import session as console_session
from smsqueue.console.blueprint import bp, safe_next

MAX_KEY_LENGTH = 200  # far longer than any key; a longer paste is not a key


@bp.get("/")
def index() -> Response:
    return redirect(url_for("console.messages"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str:
    next_target = request.values.get("next")
    if request.method == "GET":
        notice = {"out": t.signed_out, "ended": t.session_ended}.get(request.args.get("notice", ""))
        return _sign_in_form(next_target, notice=notice)
    key = (request.form.get("key") or "").strip()
    zone = request.form.get("zone") or console_session.DEFAULT_ZONE
    errors: dict[str, str] = {}
    if not console_session.valid_zone(zone):
        errors["zone"] = t.unknown_zone
    if not key:
        errors["key"] = t.key_required
    elif len(key) > MAX_KEY_LENGTH:
        errors["key"] = t.wrong_key
    if errors:
        return _sign_in_form(next_target, errors=errors, zone=zone, status=422)
    if console_session.sign_in(key, zone) is None:
        return _sign_in_form(next_target, errors={"key": t.wrong_key}, zone=zone, status=401)
    return redirect(safe_next(next_target))


def _sign_in_form(
    next_target: str | None,
    *,
    errors: dict[str, str] | None = None,
    zone: str = console_session.DEFAULT_ZONE,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    body = render_template(
        "console/sign_in.html",
        errors=errors or {},
        chosen_zone=zone,
        zones=console_session.RUSSIAN_ZONES,
        next_target=next_target or "",
        notice=notice,
    )
    return Response(body, status=status)


@bp.post("/sign-out")
def sign_out() -> Response:
    console_session.sign_out()
    return redirect(url_for("console.sign_in", notice="out"))


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response | str:
    errors: dict[str, str] = {}
    saved = False
    current = console_session.zone().key
    if request.method == "POST":
        chosen = (request.form.get("zone") or "").strip()
        if console_session.valid_zone(chosen):
            console_session.set_zone(chosen)
            current, saved = chosen, True
        else:
            errors["zone"] = t.unknown_zone
            current = chosen
    body = render_template(
        "console/settings.html",
        errors=errors,
        saved=saved,
        chosen_zone=current,
        zones=console_session.all_zones(),
    )
    return Response(body, status=422 if errors else 200)
