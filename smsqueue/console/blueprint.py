"""The console's blueprint and what every page shares: the sign-in check before each request, the CSRF
check of each POST, the security headers, the template context, and HTML error pages."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

import smsqueue.console.strings as t
from smsqueue import job_files
from smsqueue.auth import Principal
from smsqueue.console import queries
from smsqueue.console import session as console_session
from smsqueue.console.timefmt import shown
from smsqueue.db import transaction

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# Pages open without a session: the sign-in form and the stylesheet/script it uses.
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.static"})

# No asset from anywhere but this origin, no inline script or style, no framing.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def principal() -> Principal:
    return g.console_principal


# A CSV upload may be as large as the API takes (the CSRF check below reads the form, so it is set first).
UPLOAD_LIMIT = job_files.MAX_FILE + 1024 * 1024
UPLOAD_ENDPOINTS = frozenset({"console.job_upload"})


@bp.before_request
def _check() -> Response | None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = UPLOAD_LIMIT
    if request.method == "POST" and not console_session.csrf_ok():
        return error_page(400, t.csrf_failed)
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    had_session = console_session.has_key()
    who = console_session.current_principal()
    if who is None:
        target = request.full_path if request.method == "GET" else url_for("console.messages")
        notice = {"notice": "ended"} if had_session else {}
        return redirect(url_for("console.sign_in", next=target.rstrip("?"), **notice))
    g.console_principal = who
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # Numbers and texts are in the pages and their addresses: keep them out of caches and referrers.
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _context() -> dict[str, Any]:
    zone = console_session.zone()
    who = g.get("console_principal")
    return {
        "t": t,
        "zone": zone,
        "when": lambda value: shown(value, zone),
        "csrf_token": console_session.csrf_token,
        "csrf_field": console_session.CSRF_FIELD,
        "who": who,
        "entity_codes": _entity_codes(who) if who is not None and not who.is_admin else "",
    }


def _entity_codes(who: Principal) -> str:
    with transaction() as conn:
        return ", ".join(queries.entity_codes(conn, who.entity_ids))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a console path of this site (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console/"):
            return target
    return url_for("console.messages")


# --- errors -------------------------------------------------------------------------------------------


def error_page(status: int, message: str) -> Response:
    response = Response(render_template("console/error.html", message=message), status=status)
    return _headers(response)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = {403: t.forbidden, 404: t.not_found}.get(status, exc.description or t.error_title)
    return error_page(status, message)


@bp.errorhandler(OperationalError)
@bp.errorhandler(PoolTimeout)
def _unavailable(exc: Exception) -> Response:
    log.warning("console: database unavailable: %s", type(exc).__name__)
    response = error_page(503, t.unavailable)
    response.headers["Retry-After"] = "5"
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("console: unexpected error on %s %s", request.method, request.path)
    return error_page(500, t.server_error)
