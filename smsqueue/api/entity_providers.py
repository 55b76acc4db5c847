"""The providers of a legal entity (its links: priority, default sender, on/off) and the check: may this
entity send to this number through this provider at that time? Admin API, beside `legal_entities`. The
check judges through `rules.check`, the very code the sender's policy uses, with the same counters."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from smsqueue.api.http import optional_json_object, query_args, require_admin, validate
from smsqueue.api.legal_entities import (
    ADMIN_NOTE,
    BASE,
    ERRORS,
    TAG,
    entity_or_404,
    link_item,
    null_errors,
    render_link,
)
from smsqueue.api.providers import provider_or_404
from smsqueue.api.rules_schemas import CheckOut, CheckQuery, LinkIn, LinkListOut, LinkOut
from smsqueue.api.schemas import ProblemOut
from smsqueue.api.spec import route
from smsqueue.clock import iso, now
from smsqueue.db import session_scope
from smsqueue.errors import ApiError, Code, validation_error
from smsqueue.models import EntityProvider
from smsqueue.rules import admin, entities

bp = Blueprint("entity_providers", __name__)


# --- providers of an entity ---------------------------------------------------------------------------


@route(
    bp,
    "GET",
    f"{BASE}/<code>/providers",
    summary="List an entity's providers",
    tag=TAG,
    responses={200: LinkListOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} By priority (1 first; equal priorities in the order they were linked), the "
    "order the sender tries them in. `enabled` is the link's own switch; a disabled provider is not used "
    "either.",
)
def list_links(code: str) -> Response:
    require_admin()
    with session_scope() as session:
        entity = entity_or_404(session, code)
        return jsonify({"items": [render_link(link, p) for link, p in admin.links_of(session, entity)]})


@route(
    bp,
    "GET",
    f"{BASE}/<code>/providers/<provider>",
    summary="Read one provider link of an entity",
    tag=TAG,
    responses={200: LinkOut, 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 404 when the entity or provider is unknown or the provider is not linked.",
)
def get_link(code: str, provider: str) -> Response:
    require_admin()
    with session_scope() as session:
        entity = entity_or_404(session, code)
        row = provider_or_404(session, provider)
        link = session.get(EntityProvider, (entity.id, row.id))
        if link is None:
            raise ApiError(404, Code.NOT_FOUND, f"provider {provider!r} is not linked to {code!r}")
        return jsonify(render_link(link, row))


@route(
    bp,
    "PUT",
    f"{BASE}/<code>/providers/<provider>",
    summary="Add or update a provider of an entity",
    tag=TAG,
    body=LinkIn,
    responses={
        201: LinkOut,
        200: LinkOut,
        400: ProblemOut,
        404: ProblemOut,
        415: ProblemOut,
        422: ProblemOut,
        **ERRORS,
    },
    auth="admin",
    description=f'{ADMIN_NOTE} `{{"priority": 1, "sender": "ACME", "enabled": true}}`: 201 when the '
    "provider is added, 200 when its link is updated. Fields left out keep their value on an update; on "
    "an add, priority comes after the entity's last provider, sender is none and enabled is true (an "
    "empty body is allowed). `sender: null` clears the default sender. priority is 1 to 1000 (1 first). "
    "Unknown entity or provider: 404. A disabled provider may be linked; it is not used while disabled.",
)
def put_link(code: str, provider: str) -> Response:
    require_admin()
    body = validate(LinkIn, optional_json_object())
    errors = null_errors(body, ("priority", "enabled"))
    if errors:
        raise validation_error(errors)
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        row = provider_or_404(session, provider)
        item = link_item(body, provider)
        link, created = entities.put_link(session, entity, row, item)
        response = jsonify(render_link(link, row))
    response.status_code = 201 if created else 200
    if created:
        response.headers["Location"] = f"{BASE}/{code}/providers/{provider}"
    return response


@route(
    bp,
    "DELETE",
    f"{BASE}/<code>/providers/<provider>",
    summary="Remove a provider from an entity",
    tag=TAG,
    responses={204: "removed", 404: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} 204 when removed; 404 when the entity or provider is unknown or the provider "
    "is not linked. Waiting messages that asked for this provider are then rejected with "
    "`provider_not_allowed`; the others go through the entity's remaining providers.",
)
def delete_link(code: str, provider: str) -> Response:
    require_admin()
    with session_scope() as session:
        entity = entity_or_404(session, code, for_update=True)
        row = provider_or_404(session, provider)
        if not admin.unlink_provider(session, entity, row):
            raise ApiError(404, Code.NOT_FOUND, f"provider {provider!r} is not linked to {code!r}")
    return Response(status=204)


# --- the check ----------------------------------------------------------------------------------------


@route(
    bp,
    "GET",
    f"{BASE}/<code>/providers/<provider>/check",
    summary="May this entity send to this number through this provider now (or at `at`)?",
    tag=TAG,
    query=CheckQuery,
    responses={200: CheckOut, 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    description=f"{ADMIN_NOTE} Judged by the same code and the same counters as the sender, counting "
    "nothing. `reasons` lists every reason that applies, in this order: `entity_inactive`, "
    "`provider_not_allowed` (not linked, or the link or the provider disabled), `outside_send_window`, "
    "`fz_daily_limit`, `fz_weekly_limit`, `fz_monthly_limit` (limits only while fz.enabled). The time "
    "rules use the recipient's zone: `recipient_timezone` if given, else the number's own zone when it "
    "has exactly one (a geographic number), else the entity's (with fz.unknown_zone `strictest`, a number "
    "with no single zone is judged in every zone it may be in). `counts` are the messages handed to a "
    "provider (and interactions reported) in the local day, week (Monday first) and month containing "
    "`at`, and in the rolling 24 h, 7 d and 30 d ending at `at` (kept even while fz is off, and shown "
    "whether or not fz.rolling_windows is on), of the entity's limit scope (its fz.limit_group, if any): "
    "the debtor's when `debtor` is given, else the number's. With `debtor`, the reasons judge both the "
    "debtor's and the number's counts, as the sender does; the rolling windows stop a message only with "
    "fz.rolling_windows, with their calendar period's reason. "
    "`next_allowed_at` is null when allowed; otherwise the first whole minute at or after `at` "
    "(past or future) that the time rules allow, ignoring the counts, or null when none comes within 14 "
    "days. Unknown entity or provider: 404; an invalid `to`, `at` or zone: 422.",
)
def check(code: str, provider: str) -> Response:
    require_admin()
    q = validate(CheckQuery, query_args(CheckQuery))
    at = q.at or now()
    with session_scope() as session:
        entity = entity_or_404(session, code)
        row = provider_or_404(session, provider)
        result, counts = entities.check_link(session, entity, row, q.to, at, q.recipient_timezone, q.debtor)
    return jsonify(
        {
            "allowed": result.allowed,
            "reasons": result.reasons,
            "next_allowed_at": iso(result.next_allowed_at),
            "counts": counts,
        }
    )
