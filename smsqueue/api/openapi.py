"""The OpenAPI 3.1 document, generated from the operations registry (smsqueue.api.spec.OPERATIONS) and the
pydantic models that validate requests and describe answers: one source of truth, so the document
cannot drift from what the views accept.

- request bodies: the body model's validation schema; query parameters: each field of the query model
  (list fields are repeatable: `?status=a&status=b`); path parameters: strings (an unknown one is 404);
- answers: each declared status with its model's serialization schema, `application/problem+json` for
  4xx/5xx; the errors every operation of its kind can give are added (401/403 with a key, 400/413/415/422
  with a body, 422 with a query, 404 with a path parameter, 503 with Retry-After when the database is
  unreachable);
- components: every model once, from pydantic's `models_json_schema` (its `$defs` become
  `#/components/schemas/...`);
- links from each creating POST to the operations on what it made (its `id` or `code`);
- `webhooks`: the status webhook our service POSTs to callers (OpenAPI 3.1's webhooks object).
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from smsqueue.api.spec import Operation

REF_TEMPLATE = "#/components/schemas/{model}"
REF_PREFIX = "#/components/schemas/"
PROBLEM_JSON = "application/problem+json"
PATH_PARAM = re.compile(r"{([^}]+)}")

INFO_DESCRIPTION = """\
SMS dispatch for organisations: one HTTP API to hand over messages, sent exactly once through Russian SMS
aggregators at allowed hours, within the 230-FZ limits; statuses pushed (signed webhooks) and pulled
(`GET /api/v1/messages?updated_after=...`).

**Authentication**: `Authorization: Bearer <api key>` on every `/api/v1/*` call except the provider
delivery-report endpoints and this document. Admin keys may do everything; entity keys only send, read,
list and cancel their entities' messages (anything else is 403; another entity's message is 404).

**Errors**: every 4xx/5xx is `application/problem+json` (RFC 9457) with a stable `code`; a 422 lists
every invalid field in `errors`. A 503 (database or broker unreachable) comes with `Retry-After`.

**Times**: ISO-8601 with an offset (`Z`, `+03:00`); any offset ISO allows is read (up to ±23:59) and the
instant is kept in UTC, so answers give times in UTC whatever offset was sent.

**Status webhooks** (see `webhooks` below): one POST per status a message takes, signed with the
entity's webhook secret.
"""

WEBHOOK_DESCRIPTION = """\
For every status a message with a `callback_url` takes (its own, else its entity's when it was accepted),
its first (`queued` or `scheduled`) included, one POST of this body.

**Signature**: `X-Smsqueue-Signature: sha256=<hex>` is the HMAC-SHA256 of `<X-Smsqueue-Timestamp>.<raw
body>` with the entity's `webhook_secret`. Verify it over the raw bytes (not re-serialised JSON),
compare in constant time, and reject timestamps far from your clock (each attempt is signed anew, with
its own timestamp). For a grace period after the secret is rotated (`POST
/api/v1/legal-entities/{code}/webhook-secret`, default 24 h), `X-Smsqueue-Signature-Previous:
sha256=<hex>` carries the signature made with the replaced secret: accept the request when either
signature matches a secret you hold.

**Delivery**: a 2xx ends it. A network error, a timeout (10 s by default), a 5xx or a 429 is retried with
exponential backoff and jitter (honouring `Retry-After`) for at least 24 hours; any other answer (3xx,
4xx; redirects are not followed) ends it at once. Answer quickly (2xx first, work later): a receiver
that keeps failing is given a rest (its events wait, then one probe goes first).

**Order**: per message, `sequence` N+1 is sent only once N was delivered or given up. Retries may still
bring an old event late to a receiver that lost its state: keep the highest `sequence` per message `id`
and ignore anything not above it. Deliveries may (rarely, after a crash) repeat: `(id, sequence)` is
unique per change.
"""


# --- schemas ------------------------------------------------------------------------------------------


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _find_model(name: str, near: Iterable[type[BaseModel]]) -> type[BaseModel] | None:
    """A model referenced by name only (e.g. in json_schema_extra): look in the modules of the others."""
    for model in near:
        candidate = getattr(sys.modules.get(model.__module__), name, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


class Schemas:
    """Every model's JSON schema as a component, each model once (pydantic names them, and tells apart
    two of the same name, or one model whose input and output schemas differ)."""

    def __init__(self, wanted: Sequence[tuple[type[BaseModel], JsonSchemaMode]]) -> None:
        wanted = list(dict.fromkeys(wanted))
        while True:
            refs, defs = models_json_schema(wanted, ref_template=REF_TEMPLATE)
            components = defs.get("$defs", {})
            missing = _refs(components) - set(components)
            extra = []
            for name in sorted(missing):
                model = _find_model(name, [m for m, _ in wanted])
                if model is None:
                    raise ValueError(f"the schema refers to {name!r}, which no model module defines")
                extra.append((model, "validation"))
            if not extra:
                break
            wanted += extra
        self.refs: dict[tuple[type[BaseModel], str], dict[str, Any]] = refs  # type: ignore[assignment]
        self.components: dict[str, Any] = components

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def resolve(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return self.components[self.ref(model, mode)["$ref"][len(REF_PREFIX) :]]


# --- parameters ---------------------------------------------------------------------------------------


def _drop_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter left out is null: its schema is that of the value when given."""
    schema = copy.deepcopy(schema)
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        rest = [s for s in any_of if s != {"type": "null"}]
        if len(rest) < len(any_of):
            del schema["anyOf"]
            if len(rest) == 1:
                schema.update(rest[0])
            else:
                schema["anyOf"] = rest
    if schema.get("default", ...) is None:
        del schema["default"]
    return schema


def _query_parameters(model: type[BaseModel], schemas: Schemas) -> list[dict[str, Any]]:
    schema = schemas.resolve(model, "validation")
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        value = _drop_null(prop)
        description = value.pop("description", None)
        value.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": value}
        if description:
            param["description"] = description
        if value.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
        params.append(param)
    return params


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in PATH_PARAM.findall(path)
    ]


# --- answers ------------------------------------------------------------------------------------------


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Answer"


STANDARD_ERRORS = {
    400: "The body is not valid JSON, or not a JSON object (`bad_json`).",
    401: "No key, or an unknown key (`unauthorized`).",
    403: "The key may not do this (`forbidden`).",
    404: "No such resource (`not_found`).",
    413: "The body is larger than 16 MiB (`payload_too_large`).",
    415: "The body is not declared `application/json` (`unsupported_media_type`).",
    422: "Invalid input (`validation_error`): `errors` lists every invalid field with its code.",
    503: "The database or the broker is unreachable (`unavailable`); retry after `Retry-After` seconds.",
}


def _problem(description: str, schemas: Schemas, status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": schemas.ref(_problem_model(), "serialization")}},
    }
    if status in (429, 503):
        answer["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return answer


def _problem_model() -> type[BaseModel]:
    from smsqueue.api.schemas import ProblemOut

    return ProblemOut


def _responses(op: Operation, schemas: Schemas) -> dict[str, Any]:
    out: dict[int, dict[str, Any]] = {}
    for status, spec in op.responses.items():
        status = int(status)
        if isinstance(spec, type) and issubclass(spec, BaseModel):
            if status >= 400:
                answer = _problem(STANDARD_ERRORS.get(status, _phrase(status)), schemas, status)
                answer["content"] = {PROBLEM_JSON: {"schema": schemas.ref(spec, "serialization")}}
            else:
                answer = {
                    "description": (spec.__doc__ or "").strip() or _phrase(status),
                    "content": {"application/json": {"schema": schemas.ref(spec, "serialization")}},
                }
        elif status >= 400:
            answer = _problem(str(spec), schemas, status)
        else:
            answer = {"description": str(spec) or _phrase(status)}
        out[status] = answer
    for status in _standard_statuses(op):
        out.setdefault(status, _problem(STANDARD_ERRORS[status], schemas, status))
    return {str(status): out[status] for status in sorted(out)}


def _standard_statuses(op: Operation) -> list[int]:
    statuses = []
    if op.auth != "none":
        statuses += [401, 403, 503]
    if op.body is not None:
        statuses += [400, 413, 415, 422]
    if op.query is not None:
        statuses.append(422)
    if PATH_PARAM.search(op.path):
        statuses.append(404)
    return statuses


# --- operations ---------------------------------------------------------------------------------------


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[^a-zA-Z0-9]+", "_", op.path.replace("/api/v1", "")).strip("_")
    return f"{op.method}_{words}" if words else op.method


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _operation(op: Operation, schemas: Schemas) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        doc["description"] = op.description
    params = _path_parameters(op.path)
    if op.query is not None:
        params += _query_parameters(op.query, schemas)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    doc["responses"] = _responses(op, schemas)
    if op.auth == "none":
        doc["security"] = []
    elif op.auth == "admin":
        doc["x-smsqueue-auth"] = "admin"
    return _merge(doc, op.extra)


def _wanted(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    from smsqueue.webhooks.payload import WebhookEvent

    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (_problem_model(), "serialization"),
        (WebhookEvent, "serialization"),
    ]
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.query is not None:
            wanted.append((op.query, "validation"))
        for spec in op.responses.values():
            if isinstance(spec, type) and issubclass(spec, BaseModel):
                wanted.append((spec, "serialization"))
    return wanted


def _webhooks(schemas: Schemas) -> dict[str, Any]:
    from smsqueue.webhooks.payload import WebhookEvent
    from smsqueue.webhooks.signing import PREVIOUS_SIGNATURE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

    header = {"type": "string"}
    return {
        "message.status": {
            "post": {
                "summary": "A message took a status (sent by smsqueue to the message's callback_url)",
                "description": WEBHOOK_DESCRIPTION,
                "operationId": "webhook_message_status",
                "tags": ["Webhooks"],
                "security": [],
                "parameters": [
                    {
                        "name": TIMESTAMP_HEADER,
                        "in": "header",
                        "required": True,
                        "description": "Unix time (seconds) of this attempt; part of the signed text.",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                    {
                        "name": SIGNATURE_HEADER,
                        "in": "header",
                        "required": True,
                        "description": "`sha256=` and the hex HMAC-SHA256 of `<timestamp>.<raw body>` "
                        "with the entity's webhook secret.",
                        "schema": {**header, "pattern": "^sha256=[0-9a-f]{64}$"},
                    },
                    {
                        "name": PREVIOUS_SIGNATURE_HEADER,
                        "in": "header",
                        "required": False,
                        "description": "During the grace period after a secret rotation: the same signature "
                        "made with the replaced secret.",
                        "schema": {**header, "pattern": "^sha256=[0-9a-f]{64}$"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schemas.ref(WebhookEvent, "serialization")}},
                },
                "responses": {
                    "2XX": {"description": "Received: delivery ends."},
                    "429": {"description": "Retried later (after Retry-After when given)."},
                    "5XX": {"description": "Retried with backoff for at least 24 hours."},
                    "default": {"description": "Any other answer (3xx, 4xx) ends delivery at once."},
                },
            }
        }
    }


def _add_links(operations: Sequence[Operation], paths: dict[str, dict[str, Any]], schemas: Schemas) -> None:
    """OpenAPI links from each creating POST to the operations on what it made: its answer's `id` (or
    `code`) is the first path parameter below the POST's path (e.g. POST /api/v1/messages -> GET
    /api/v1/messages/{message_id}), so clients and tools can follow them."""
    for op in operations:
        if op.method != "post":
            continue
        for status, spec in op.responses.items():
            if not (200 <= int(status) < 300 and isinstance(spec, type) and issubclass(spec, BaseModel)):
                continue
            props = schemas.resolve(spec, "serialization").get("properties", {})
            field = "id" if "id" in props else "code" if "code" in props else None
            if field is None:
                continue
            links: dict[str, Any] = {}
            for target in operations:
                rest = target.path[len(op.path) :]
                match = re.match(r"^/{([^}]+)}", rest) if target.path.startswith(op.path + "/") else None
                if match is None:
                    continue
                target_id = _operation_id(target)
                links[target_id] = {
                    "operationId": target_id,
                    "parameters": {match.group(1): f"$response.body#/{field}"},
                }
            if links:
                paths[op.path][op.method]["responses"][str(int(status))]["links"] = links


def build(operations: Sequence[Operation], *, version: str = "1.0.0") -> dict[str, Any]:
    schemas = Schemas(_wanted(operations))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    _add_links(operations, paths, schemas)
    # A query model is spread into parameters: it is not a component of its own unless something refers to it.
    used = _refs(paths) | _refs(schemas.components) | _refs(_webhooks(schemas))
    for op in operations:
        if op.query is not None:
            name = schemas.ref(op.query, "validation")["$ref"][len(REF_PREFIX) :]
            if name not in used:
                schemas.components.pop(name, None)
    tags = sorted({op.tag for op in operations} | {"Webhooks"})
    return {
        "openapi": "3.1.0",
        "info": {"title": "smsqueue", "version": version, "description": INFO_DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "paths": {path: paths[path] for path in sorted(paths)},
        "webhooks": _webhooks(schemas),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: admin, or bound to one or more legal entities.",
                }
            },
        },
        "security": [{"bearer": []}],
    }
