"""Operations endpoints: liveness, readiness (database and broker), Prometheus metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from smsqueue import metrics
from smsqueue.api.http import problem_response
from smsqueue.api.spec import route
from smsqueue.db import transaction
from smsqueue.errors import Code, problem
from smsqueue.tasks.celery_app import app as celery_app

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)
TAG = "Operations"


@route(bp, "GET", "/healthz", summary="The process is up", tag=TAG, auth="none", responses={200: "ok"})
def healthz() -> Response:
    return jsonify({"status": "ok"})


def _database_ok() -> bool:
    try:
        with transaction() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("readiness: database check failed: %s", type(exc).__name__)
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception as exc:
        log.warning("readiness: broker check failed: %s", type(exc).__name__)
        return False


@route(
    bp,
    "GET",
    "/readyz",
    summary="Database and broker are reachable",
    tag=TAG,
    auth="none",
    responses={200: "ready", 503: "not ready (problem+json)"},
)
def readyz() -> Response:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    if all(checks.values()):
        return jsonify({"status": "ready", "checks": {k: "ok" for k in checks}})
    failed = ", ".join(k for k, ok in checks.items() if not ok)
    body = problem(503, Code.UNAVAILABLE, f"not ready: {failed} unreachable")
    body["checks"] = {k: "ok" if ok else "unreachable" for k, ok in checks.items()}
    return problem_response(body, 503, {"Retry-After": "5"})


@route(
    bp,
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    tag=TAG,
    auth="none",
    responses={200: "Prometheus text exposition format"},
)
def prometheus() -> Response:
    with transaction() as conn:
        body = metrics.render(conn)
    return Response(body, mimetype="text/plain", content_type="text/plain; version=0.0.4; charset=utf-8")
