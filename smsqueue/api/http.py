"""HTTP helpers the views share: who is calling (the API key), JSON bodies and query strings as
pydantic models, problem+json answers. The app factory (`smsqueue.web`) wires them in; views import
them from here, so nothing under `api/` imports the factory."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, g, request
from pydantic import BaseModel, ValidationError

from smsqueue import auth, logs, ratelimit
from smsqueue.api.schemas import field_errors
from smsqueue.errors import ApiError, Code, FieldError, validation_error
from smsqueue.rules import audit

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 16 * 1024 * 1024
PROBLEM_JSON = "application/problem+json"

# Paths under /api/v1 that need no key: the provider callbacks (they carry their own token) and the spec.
PUBLIC_API_SUFFIXES = ("/dlr",)
PUBLIC_API_PATHS = ("/api/v1/openapi.json",)


# --- request id ---------------------------------------------------------------------------------------


def begin_request() -> None:
    """Before every request: its id (the caller's X-Request-Id, or a new one) for every log line of it,
    in this process and in the worker that sends its messages."""
    g.request_id = logs.accepted_request_id(request.headers.get("X-Request-Id"))
    logs.request_id_var.set(g.request_id)


def echo_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-Id"] = g.request_id
    return response


# --- auth ---------------------------------------------------------------------------------------------


def authenticate() -> None:
    """Before every request: the principal of the request's API key, or a 401 (public paths pass); a 429
    when the key is over its `rate_limit_per_second` (counted in Redis across every web process)."""
    path = request.path
    audit.set_actor(None, None)  # a thread's context outlives its request: no actor carried over
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
    grant = ratelimit.take_request(principal.key_id, principal.rate_limit_per_second)
    if not grant.granted:
        raise ApiError(
            429,
            Code.RATE_LIMITED,
            f"this key may make {principal.rate_limit_per_second:g} requests a second",
            headers={"Retry-After": str(max(1, math.ceil(grant.wait)))},
        )
    g.principal = principal
    audit.set_actor(principal.key_id, principal.name)


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


def optional_json_object() -> dict[str, Any]:
    """A JSON object body, or {} when the request has no body at all."""
    if not request.get_data(cache=True):
        return {}
    return json_object()


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


# --- answers ------------------------------------------------------------------------------------------


def problem_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, mimetype=PROBLEM_JSON
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
