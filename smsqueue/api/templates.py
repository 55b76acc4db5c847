"""Templates of a legal entity: list, create, read, replace, delete. Admin keys write; entity keys read
the templates of their own entities (and send with them, see the messages API)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import Field, field_validator

from smsqueue import entity_cache, template_store
from smsqueue.api.http import json_object, principal, require_admin, validate
from smsqueue.api.legal_entities import BASE
from smsqueue.api.rules_schemas import CODE_PATTERN, check_code
from smsqueue.api.schemas import ProblemOut, Strict
from smsqueue.api.spec import route
from smsqueue.clock import iso
from smsqueue.errors import ApiError, Code, not_found, validation_error
from smsqueue.templates import TemplateError, compile_template

bp = Blueprint("templates", __name__)
TAG = "Templates"
ERRORS: dict[int, Any] = {401: ProblemOut, 403: ProblemOut, 404: ProblemOut}
SYNTAX = (
    "Placeholders are `{name}`: a letter or `_`, then letters, digits and `_`; `{{` and `}}` are literal "
    "braces. Any other brace is 422 (field `text`, code `invalid_template`)."
)


class TemplatePut(Strict):
    text: str = Field(min_length=1, max_length=10_000, description=SYNTAX)
    description: str | None = Field(None, max_length=1000)


class TemplateIn(TemplatePut):
    code: str = Field(max_length=64, description=f"Unique within the entity; {CODE_PATTERN}.")

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_code(value)


class TemplateOut(Strict):
    code: str
    text: str
    description: str | None
    placeholders: list[str] = Field(description="The placeholders' names, sorted.")
    created_at: str
    updated_at: str


class TemplateListOut(Strict):
    items: list[TemplateOut]


def render_template(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "text": row.text,
        "description": row.description,
        "placeholders": sorted(compile_template(row.text).placeholders),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _entity_id(code: str, *, write: bool) -> int:
    who = require_admin() if write else principal()
    info = entity_cache.entity(code)
    if info is None:
        raise ApiError(404, Code.NOT_FOUND, f"legal entity {code!r} not found")
    if not who.may_use(info.id):
        raise ApiError(403, Code.FORBIDDEN, f"this key may not act for legal entity {code!r}")
    return info.id


def _invalid(exc: TemplateError) -> ApiError:
    return validation_error(exc.errors)


@route(
    bp,
    "GET",
    f"{BASE}/<code>/templates",
    summary="List an entity's templates",
    tag=TAG,
    responses={200: TemplateListOut, **ERRORS},
    description="By code. An entity key reads its own entities' templates.",
)
def list_templates(code: str) -> Response:
    entity_id = _entity_id(code, write=False)
    return jsonify({"items": [render_template(r) for r in template_store.list_of(entity_id)]})


@route(
    bp,
    "POST",
    f"{BASE}/<code>/templates",
    summary="Create a template",
    tag=TAG,
    body=TemplateIn,
    responses={201: TemplateOut, 409: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"Admin key only. {SYNTAX} A code the entity has already is 409 conflict.",
)
def create_template(code: str) -> Response:
    entity_id = _entity_id(code, write=True)
    row = add_template(entity_id, validate(TemplateIn, json_object()))
    response = jsonify(render_template(row))
    response.status_code = 201
    response.headers["Location"] = f"{BASE}/{code}/templates/{row.code}"
    return response


# --- the services (the API's views and the console's forms both call these) -----------------------------


def add_template(entity_id: int, body: TemplateIn) -> Any:
    """Store a new template; 422 for a malformed text, 409 for a code the entity has already."""
    try:
        return template_store.create(entity_id, body.code, body.text, body.description)
    except TemplateError as exc:
        raise _invalid(exc) from None
    except template_store.DuplicateTemplate:
        raise ApiError(409, Code.CONFLICT, f"the entity has a template {body.code!r} already") from None


def change_template(entity_id: int, code: str, body: TemplatePut) -> Any:
    """Replace a template's text and description; 422 for a malformed text, 404 when there is none."""
    try:
        row = template_store.replace(entity_id, code, body.text, body.description)
    except TemplateError as exc:
        raise _invalid(exc) from None
    if row is None:
        raise not_found("template")
    return row


def drop_template(entity_id: int, code: str) -> None:
    if not template_store.remove(entity_id, code):
        raise not_found("template")


@route(
    bp,
    "GET",
    f"{BASE}/<code>/templates/<template>",
    summary="Read a template",
    tag=TAG,
    responses={200: TemplateOut, **ERRORS},
    description="An entity key reads its own entities' templates; an unknown template is 404.",
)
def get_template(code: str, template: str) -> Response:
    row = template_store.get(_entity_id(code, write=False), template)
    if row is None:
        raise not_found("template")
    return jsonify(render_template(row))


@route(
    bp,
    "PUT",
    f"{BASE}/<code>/templates/<template>",
    summary="Replace a template's text and description",
    tag=TAG,
    body=TemplatePut,
    responses={200: TemplateOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description="Admin key only. The template must exist (POST creates one: 404 otherwise). Messages "
    "already accepted keep the text they were rendered with; a running job keeps the text it started "
    "with.",
)
def put_template(code: str, template: str) -> Response:
    entity_id = _entity_id(code, write=True)
    body = validate(TemplatePut, json_object())
    return jsonify(render_template(change_template(entity_id, template, body)))


@route(
    bp,
    "DELETE",
    f"{BASE}/<code>/templates/<template>",
    summary="Delete a template",
    tag=TAG,
    responses={204: "Deleted.", **ERRORS},
    auth="admin",
    description="Admin key only. Messages rendered from it keep their text and its code.",
)
def delete_template(code: str, template: str) -> Response:
    drop_template(_entity_id(code, write=True), template)
    return Response(status=204)
