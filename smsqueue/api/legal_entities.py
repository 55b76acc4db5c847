"""Legal entities, their sending windows and 230-FZ settings (the rules service's admin API); an
entity's providers and the check are in `entity_providers`.

Every endpoint needs an admin key. This module is the HTTP side: bodies in, entities out. What the
settings must satisfy beyond their shape (limit order, known providers, links) is `rules.entities`;
writes go through `rules.admin` (which tells the caches)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smsqueue import law
from smsqueue.api.http import json_object, query_args, require_admin, validate
from smsqueue.api.rules_schemas import (
    CODE_PATTERN,
    DEFAULT_RETENTION_DAYS,
    MASKED,
    EntityIn,
    EntityListOut,
    EntityListQuery,
    EntityOut,
    EntityPatch,
    FzIn,
    FzOut,
    FzPatch,
    LinkIn,
    LinkItemIn,
    SendWindowIn,
    WindowOut,
)
from smsqueue.api.schemas import ProblemOut
from smsqueue.api.spec import route
from smsqueue.db import session_scope
from smsqueue.errors import ApiError, Code, FieldCode, FieldError, validation_error
from smsqueue.models import EntityProvider, LegalEntity, Provider
from smsqueue.rules import admin, entities

bp = Blueprint("legal_entities", __name__)
TAG = "Legal entities"
BASE = "/api/v1/legal-entities"
ERRORS: dict[int, Any] = {401: ProblemOut, 403: ProblemOut}
ADMIN_NOTE = "Admin key only (an entity key gets 403)."

# Entity fields a PATCH copies to the column of the same name as given (null clears the nullable ones).
NULLABLE_OR_PLAIN = (
    "name", "inn", "active", "timezone", "callback_url", "on_window", "creditor_name", "contact_phone",
    "retention_days",
)  # fmt: skip
NOT_NULL_ENTITY_FIELDS = (
    "name",
    "active",
    "timezone",
    "send_window",
    "on_window",
    "fz",
    "providers",
    "retention_days",
)


# --- rendering ----------------------------------------------------------------------------------------


def render_link(link: EntityProvider, provider: Provider) -> dict[str, Any]:
    return {
        "provider": provider.code,
        "priority": link.priority,
        "sender": link.sender,
        "enabled": link.enabled,
    }


def render_send_window(entity: LegalEntity) -> dict[str, str]:
    return {"from": entity.send_window_from, "to": entity.send_window_to}


def render_fz(entity: LegalEntity) -> dict[str, Any]:
    return {
        "enabled": entity.fz_enabled,
        "per_day": entity.fz_per_day,
        "per_week": entity.fz_per_week,
        "per_month": entity.fz_per_month,
        "weekday_hours": {"from": entity.fz_weekday_from, "to": entity.fz_weekday_to},
        "weekend_hours": {"from": entity.fz_weekend_from, "to": entity.fz_weekend_to},
        "holidays_as_weekends": entity.fz_holidays_as_weekends,
        "on_limit": entity.fz_on_limit,
        "limit_group": entity.fz_limit_group,
        "rolling_windows": entity.fz_rolling_windows,
        "unknown_zone": entity.fz_unknown_zone,
        "identification": entity.fz_identification,
    }


def render_entity(session: Session, entity: LegalEntity, webhook_secret: str = MASKED) -> dict[str, Any]:
    return {
        "code": entity.code,
        "name": entity.name,
        "inn": entity.inn,
        "active": entity.active,
        "timezone": entity.timezone,
        "callback_url": entity.callback_url,
        "webhook_secret": webhook_secret,
        "send_window": render_send_window(entity),
        "on_window": entity.on_window,
        "fz": render_fz(entity),
        "providers": [render_link(link, p) for link, p in admin.links_of(session, entity)],
        # v1.1 (137-FZ), after the v1 fields so their documented order stays as it was
        "creditor_name": entity.creditor_name,
        "contact_phone": entity.contact_phone,
        "retention_days": entity.retention_days,  # v1.1: after the v1 fields, whose order is documented
    }


# --- lookups ------------------------------------------------------------------------------------------


def entity_or_404(session: Session, code: str, *, for_update: bool = False) -> LegalEntity:
    entity = admin.entity_for_update(session, code) if for_update else admin.entity_by_code(session, code)
    if entity is None:
        raise ApiError(404, Code.NOT_FOUND, f"legal entity {code!r} not found")
    return entity


# --- from request models to the rules ----------------------------------------------------------------


def link_item(body: LinkIn, provider: str) -> entities.LinkItem:
    return entities.LinkItem(
        provider=provider,
        priority=body.priority,
        sender=body.sender,
        sender_given="sender" in body.model_fields_set,
        enabled=body.enabled,
    )


def link_items(items: list[LinkItemIn]) -> list[entities.LinkItem]:
    return [link_item(item, item.provider) for item in items]


def fz_settings(fz: FzIn | FzPatch, given: set[str] | None = None) -> dict[str, Any]:
    """The 230-FZ settings of a body as the rules take them: every field, or those `given`."""
    return fz.model_dump(by_alias=True, include=given)


def null_errors(model: Any, fields: tuple[str, ...], prefix: str = "") -> list[FieldError]:
    """Fields given as null that may not be null (a PATCH leaves a field out to keep it)."""
    return [
        FieldError(f"{prefix}{name}", FieldCode.INVALID_TYPE, "must not be null")
        for name in fields
        if name in model.model_fields_set and getattr(model, name) is None
    ]


def identification_errors_of(entity: LegalEntity, columns: dict[str, Any]) -> list[FieldError]:
    """The identification setting checked as it will be stored: the changed columns, the others kept."""

    def stored(name: str) -> Any:
        return columns.get(name, getattr(entity, name))

    return entities.identification_errors(
        stored("fz_identification"), stored("creditor_name"), stored("contact_phone")
    )


# --- entities -----------------------------------------------------------------------------------------


@route(
    bp,
    "GET",
    BASE,
    summary="List legal entities",
    tag=TAG,
    query=EntityListQuery,
    responses={200: EntityListOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Every entity, active or not (filter with `active`), by code. "
    'Webhook secrets are masked ("***").',
)
def list_entities() -> Response:
    require_admin()
    q = validate(EntityListQuery, query_args(EntityListQuery))
    with session_scope() as session:
        stmt = select(LegalEntity).order_by(LegalEntity.code)
        if q.active is not None:
            stmt = stmt.where(LegalEntity.active.is_(q.active))
        items = [render_entity(session, e) for e in session.scalars(stmt)]
    return jsonify({"items": items})


@route(
    bp,
    "POST",
    BASE,
    summary="Create a legal entity",
    tag=TAG,
    body=EntityIn,
    responses={201: EntityOut, 400: ProblemOut, 409: ProblemOut, 415: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} `code` is unique and permanent, 1 to 64 characters matching "
    f"`{CODE_PATTERN}` (an existing code: 409 `conflict`). Everything else has a default: name = code, "
    "timezone Europe/Moscow, send_window 09:00-21:00, on_window defer, and the 230-FZ defaults "
    f"({law.PER_DAY} a day, {law.PER_WEEK} a week, {law.PER_MONTH} a month; "
    f"weekdays {law.WEEKDAY_HOURS_TEXT}, weekends and holidays {law.WEEKEND_HOURS_TEXT}; on_limit reject). "
    "`inn` must be a valid 10- or 12-digit INN (checksum included; `invalid_inn`). `timezone` is an IANA "
    "zone (`invalid_timezone`). `callback_url` is checked like a message's (`invalid_url`, "
    "`callback_url_not_allowed`). Window times are HH:MM from 00:00 to 24:00 (`invalid_time`); `from` equal "
    "to `to` is `empty_window`; only the send window may cross midnight (`crosses_midnight`); limits are "
    "integers >= 0 with per_week >= per_day and per_month >= per_week (`limit_below_shorter_period`). "
    "`providers` may link providers at once (a priority left out is the place in the list). The 201 body "
    "shows the generated `webhook_secret` in clear, the only time it is shown; `Location` names the entity.",
)
def create_entity() -> Response:
    require_admin()
    body = validate(EntityIn, json_object(), also=entities.later_checks)
    errors = entities.limit_errors(body.fz.per_day, body.fz.per_week, body.fz.per_month)
    errors += entities.identification_errors(body.fz.identification, body.creditor_name, body.contact_phone)
    if errors:
        raise validation_error(errors)
    columns: dict[str, Any] = {
        "inn": body.inn,
        "active": body.active,
        "timezone": body.timezone,
        "callback_url": body.callback_url,
        "creditor_name": body.creditor_name,
        "contact_phone": body.contact_phone,
        "retention_days": body.retention_days or DEFAULT_RETENTION_DAYS,
        "send_window_from": body.send_window.from_,
        "send_window_to": body.send_window.to,
        "on_window": body.on_window,
        **entities.fz_columns(fz_settings(body.fz)),
    }
    try:
        with session_scope() as session:
            resolved, errors = entities.resolve_link_items(session, link_items(body.providers or []))
            if errors:
                raise validation_error(errors)
            if admin.entity_by_code(session, body.code) is not None:
                raise _duplicate(body.code)
            entity, secret = admin.create_entity(
                session, code=body.code, name=body.name or body.code, **columns
            )
            if resolved:
                entities.apply_links(session, entity, resolved, replace=False)
            rendered = render_entity(session, entity, webhook_secret=secret)
    except IntegrityError:
        raise _duplicate(body.code) from None  # created by another request a moment ago
    response = jsonify(rendered)
    response.status_code = 201
    response.headers["Location"] = f"{BASE}/{body.code}"
    return response


def _duplicate(code: str) -> ApiError:
    return ApiError(409, Code.CONFLICT, f"a legal entity with code {code!r} exists already")


@route(
    bp,
    "GET",
    f"{BASE}/<code>",
    summary="Read a legal entity",
    tag=TAG,
    responses={200: EntityOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f'{ADMIN_NOTE} The webhook secret is masked ("***"); providers by priority (1 first).',
)
def get_entity(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify(render_entity(session, entity_or_404(session, code)))


@route(
    bp,
    "PATCH",
    f"{BASE}/<code>",
    summary="Edit a legal entity",
    tag=TAG,
    body=EntityPatch,
    responses={200: EntityOut, 400: ProblemOut, 404: ProblemOut, 415: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Only the fields given change; the checks are those of the creation. "
    '`fz` is merged field by field (`{"fz": {"per_day": 1}}` changes that alone) and the limits are '
    "checked against the stored ones; `send_window`, `weekday_hours` and `weekend_hours` are given whole. "
    "`null` clears `inn` or `callback_url`; other fields may not be null (`invalid_type`). `code` cannot "
    "change (given with another value: 422 `invalid_value`). `webhook_secret` may only be sent back as "
    '"***" (a new one: POST .../webhook-secret). `providers`, when given, replaces the entity\'s providers '
    "(those left out are unlinked). `active: true` reactivates a deactivated entity. Answers the entity.",
)
def patch_entity(code: str) -> Response:
    require_admin()
    body = validate(EntityPatch, json_object())
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        edit_entity(session, entity, body)
        return jsonify(render_entity(session, entity))


def edit_entity(session: Session, entity: LegalEntity, body: EntityPatch) -> None:
    """A validated PATCH body's checks against the stored entity, then its writes: a 422 listing every
    invalid field, or the changes applied. The console's entity forms send their fields through here."""
    given = body.model_fields_set
    errors = null_errors(body, NOT_NULL_ENTITY_FIELDS)
    fz_nulls = null_errors(body.fz, entities.FZ_SETTINGS, "fz.") if body.fz else []
    errors += fz_nulls
    if body.code is not None and body.code != entity.code:
        errors.append(FieldError("code", FieldCode.INVALID_VALUE, "the code of an entity cannot change"))
    columns: dict[str, Any] = {}
    for name in NULLABLE_OR_PLAIN:
        if name in given:
            columns[name] = getattr(body, name)
    if body.send_window is not None:
        columns["send_window_from"] = body.send_window.from_
        columns["send_window_to"] = body.send_window.to
    if body.fz is not None and not fz_nulls:
        columns.update(entities.fz_columns(fz_settings(body.fz, body.fz.model_fields_set)))
        # the limits are checked as they will be stored: the given ones with the others kept
        errors += entities.limit_errors(*entities.merged_limits(entity, columns))
    if not fz_nulls:
        errors += identification_errors_of(entity, columns)
    resolved: list[tuple[entities.LinkItem, Provider]] = []
    if body.providers is not None:
        resolved, link_errors = entities.resolve_link_items(session, link_items(body.providers))
        errors += link_errors
    if errors:
        raise validation_error(errors)
    if columns:
        admin.update_entity(session, entity, **columns)
    if body.providers is not None:
        entities.apply_links(session, entity, resolved, replace=True)


@route(
    bp,
    "DELETE",
    f"{BASE}/<code>",
    summary="Deactivate a legal entity",
    tag=TAG,
    responses={200: EntityOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Deactivates (`active: false`) rather than deletes: its messages keep "
    "referring to it. From then on its messages, new and waiting alike, are `rejected` with "
    "`entity_inactive` when a worker takes them. Answers 200 with the entity; deactivating an inactive "
    'entity answers the same. `PATCH {"active": true}` reactivates it.',
)
def delete_entity(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        if entity.active:
            admin.deactivate_entity(session, entity)
        return jsonify(render_entity(session, entity))


# --- send window and 230-FZ settings ------------------------------------------------------------------


@route(
    bp,
    "GET",
    f"{BASE}/<code>/send-window",
    summary="Read the standard sending window",
    tag=TAG,
    responses={200: WindowOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} In the recipient's local time; `from` included, `to` excluded.",
)
def get_send_window(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify(render_send_window(entity_or_404(session, code)))


@route(
    bp,
    "PUT",
    f"{BASE}/<code>/send-window",
    summary="Set the standard sending window",
    tag=TAG,
    body=SendWindowIn,
    responses={200: WindowOut, 400: ProblemOut, 404: ProblemOut, 415: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f'{ADMIN_NOTE} `{{"from": "HH:MM", "to": "HH:MM"}}`, both required, 00:00 to 24:00 '
    "(`invalid_time`); `from` may not be 24:00; `from` equal to `to` is `empty_window`; a `from` after "
    "`to` runs across midnight (21:00-06:00); 00:00-24:00 is all day. Answers the window.",
)
def put_send_window(code: str) -> Response:
    require_admin()
    window = validate(SendWindowIn, json_object())
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        admin.update_entity(session, entity, send_window_from=window.from_, send_window_to=window.to)
        return jsonify(render_send_window(entity))


@route(
    bp,
    "GET",
    f"{BASE}/<code>/fz",
    summary="Read the 230-FZ settings",
    tag=TAG,
    responses={200: FzOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=ADMIN_NOTE,
)
def get_fz(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        return jsonify(render_fz(entity_or_404(session, code)))


@route(
    bp,
    "PUT",
    f"{BASE}/<code>/fz",
    summary="Set the 230-FZ settings",
    tag=TAG,
    body=FzIn,
    responses={200: FzOut, 400: ProblemOut, 404: ProblemOut, 415: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Replaces the settings whole: a field left out takes the law's default "
    f"(enabled, {law.LIMITS_TEXT}, weekdays {law.WEEKDAY_HOURS_TEXT}, weekends {law.WEEKEND_HOURS_TEXT}, "
    "holidays as weekends, on_limit "
    "reject); to change one field alone, PATCH the entity with `fz`. Limits are integers from 0 "
    "(`too_small` below) with per_week >= per_day and per_month >= per_week "
    "(`limit_below_shorter_period`); hours need `from` before `to` (`crosses_midnight`, `empty_window`). "
    "`on_limit`: `reject` (reason fz_daily_limit / fz_weekly_limit / fz_monthly_limit: the longest period "
    "at its limit) or `defer` (scheduled at the start of the next period with room, then the next minute "
    "the time rules allow). The counts are kept whether `enabled` is on or off; only on are they enforced.",
)
def put_fz(code: str) -> Response:
    require_admin()
    fz = validate(FzIn, json_object(), prefix="")
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        columns = entities.fz_columns(fz_settings(fz))
        errors = identification_errors_of(entity, columns)
        if errors:
            raise validation_error(errors)
        admin.update_entity(session, entity, **columns)
        return jsonify(render_fz(entity))
