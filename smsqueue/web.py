"""The Flask app factory: the blueprints, authentication before each request, problem+json for every
error. The helpers views use live in `smsqueue.api.http`; this module imports `api/`, never the reverse."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask.sessions import SessionInterface
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from smsqueue.api import register_blueprints
from smsqueue.api.http import MAX_BODY, authenticate, begin_request, echo_request_id, problem_response
from smsqueue.errors import ApiError, Code, problem
from smsqueue.logs import configure_logging
from smsqueue.startup import check_or_exit

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER = "5"


def create_app() -> Flask:
    configure_logging()
    check_or_exit("web")
    app = Flask("smsqueue", static_folder=None)
    app.session_interface = _NoSessions()
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.before_request(begin_request)
    app.before_request(authenticate)
    app.after_request(echo_request_id)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)
    register_blueprints(app)
    from smsqueue.console.app import register as register_console

    register_console(app)
    return app


class _NoSessions(SessionInterface):
    """No Flask session: API calls carry their key, the console keeps its own cookie. Flask's default
    interface built a signing serializer on every request only to find no secret (~5% of the web's CPU
    per accepted message, py-spy)."""

    def open_session(self, app: Flask, request: object) -> None:  # type: ignore[override]
        return None  # Flask then uses its null session

    def save_session(self, app: Flask, session: object, response: object) -> None:  # type: ignore[override]
        return None


# --- errors -------------------------------------------------------------------------------------------


def _api_error(exc: ApiError) -> Response:
    return problem_response(exc.to_problem(), exc.status, exc.headers)


_HTTP_CODES = {
    400: Code.BAD_JSON,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    409: Code.CONFLICT,
    413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    429: Code.RATE_LIMITED,
    503: Code.UNAVAILABLE,
}


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, Code.INTERNAL_ERROR if status >= 500 else Code.BAD_JSON)
    detail = {
        404: "no such resource",
        405: f"{request.method} is not allowed here",
        413: f"the body is larger than {MAX_BODY // (1024 * 1024)} MiB",
    }.get(status, exc.description)
    headers: dict[str, str] = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    if status == 413:
        # The body was not read: closing the connection keeps the client from sending it on.
        headers["Connection"] = "close"
    return problem_response(problem(status, code, detail), status, headers)


def _database_unavailable(exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(
        problem(503, Code.UNAVAILABLE, "the database is unavailable; try again shortly"),
        503,
        {"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


def _database_error(exc: DBAPIError) -> Response:
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return _database_unavailable(exc)
    return _unexpected(exc)


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return problem_response(problem(500, Code.INTERNAL_ERROR, "an unexpected error; it has been logged"), 500)
