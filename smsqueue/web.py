"""The Flask app factory: authentication, problem+json errors, JSON bodies, blueprint registration."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from smsqueue import auth
from smsqueue.api.schemas import field_errors
from smsqueue.errors import ApiError, Code, FieldError, problem, validation_error
from smsqueue.logs import configure_logging

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

MAX_BODY = 16 * 1024 * 1024
PROBLEM_JSON = "application/problem+json"
UNAVAILABLE_RETRY_AFTER = "5"

# Paths under /api/v1 that need no key: the provider callbacks (they carry their own token) and the spec.
PUBLIC_API_SUFFIXES = ("/dlr",)
PUBLIC_API_PATHS = ("/api/v1/openapi.json",)


def create_app() -> Flask:
    configure_logging()
    app = Flask("smsqueue", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.before_request(_authenticate)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)
    from smsqueue.api import register_blueprints

    register_blueprints(app)
    from smsqueue.console.app import register as register_console

    register_console(app)
    return app


# --- auth ---------------------------------------------------------------------------------------------


def _authenticate() -> None:
    path = request.path
    if "\x00" in path:
        raise ApiError(404, Code.NOT_FOUND, "no such resource")  # no code or id holds a NUL
    if not path.startswith("/api/v1/") or path in PUBLIC_API_PATHS or path.endswith(PUBLIC_API_SUFFIXES):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            Code.UNAUTHORIZED,
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": 'Bearer realm="smsqueue"'},
        )
    principal = auth.lookup(key.strip())
    if principal is None:
        raise ApiError(
            401,
            Code.UNAUTHORIZED,
            "unknown API key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    g.principal = principal


def principal() -> auth.Principal:
    return g.principal


def require_admin() -> auth.Principal:
    who = principal()
    if not who.is_admin:
        raise ApiError(403, Code.FORBIDDEN, "this needs an admin key")
    return who


# --- bodies and queries -------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body() -> Any:
    """The request's JSON body: 415 unless it is declared JSON, 400 unless it parses, 413 if too large."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        raise ApiError(415, Code.UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")
    raw = request.get_data(cache=True)
    if request.content_length is None and len(raw) >= MAX_BODY:
        # A chunked body is cut at the limit rather than refused: reaching the limit means it was over.
        raise ApiError(
            413, Code.PAYLOAD_TOO_LARGE, f"the body is larger than {MAX_BODY // (1024 * 1024)} MiB"
        )
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, Code.BAD_JSON, "the body is not valid JSON") from None


def json_object() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, Code.BAD_JSON, "the body must be a JSON object")
    return body


def validate(
    model: type[M],
    data: Any,
    prefix: str = "",
    *,
    also: Callable[[Any, set[str]], list[FieldError]] | None = None,
) -> M:
    """`data` as a `model`, or a 422 listing every invalid field. `also(data, invalid field paths)` runs
    the checks that come after validation (those needing the database) on the fields that did pass, when
    others failed: so a 422 lists them too instead of only the first round's."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc, prefix)
        if also is not None:
            errors += also(data, {e.field for e in errors})
        raise validation_error(errors) from None


def query_args(model: type[BaseModel]) -> dict[str, Any]:
    """Query parameters as a dict for `model`: list fields take every value, others the last one."""
    out: dict[str, Any] = {}
    for name in request.args:
        values = request.args.getlist(name)
        field = model.model_fields.get(name)
        is_list = field is not None and "list[" in str(field.annotation)
        out[name] = values if is_list else values[-1]
    return out


# --- errors -------------------------------------------------------------------------------------------


def problem_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, mimetype=PROBLEM_JSON
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


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
