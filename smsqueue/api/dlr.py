"""Delivery reports pushed by providers: `POST|GET /api/v1/providers/{code}/dlr?token=...`.

The request is authenticated by the provider's callback token (no API key), parsed by that provider's
client, handed to the `smsqueue.process_reports` task (queue `status`), and answered at once in the form
the provider expects. The token is never logged or passed on: the task carries the provider's row id
and the reports' plain fields only.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from smsqueue.api.spec import route
from smsqueue.db import transaction
from smsqueue.errors import ApiError, Code
from smsqueue.models import Provider
from smsqueue.providers.base import IncomingRequest, ParsedReports, ProviderError
from smsqueue.queues import Tasks
from smsqueue.reports import ReportItem
from smsqueue.rules.provider_clients import callback_token_of, client_of

log = logging.getLogger(__name__)
bp = Blueprint("dlr", __name__)
TAG = "Provider delivery reports"
RULE = "/api/v1/providers/<code>/dlr"
# Compared against when the provider code is unknown, so that an unknown code and a wrong token take the
# same time and get the same answer (which codes exist is not revealed).
_DUMMY_TOKEN = "x" * 32
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

DESCRIPTION = """\
Where a provider pushes delivery reports, in its own format, authenticated by the provider's
`callback_token` in the query string (no API key). Give the provider this URL with its token:
SMSC.ru and SMS.ru take it once in the account's settings (SMSC: handler URL, POST; SMS.ru: callback
URL), SMS Traffic's support sets it for the account, SMS Aero is given it with every message
(`callbackUrl`, built from `SMSQUEUE_PUBLIC_URL`). IQSMS pushes nothing: its statuses wait in the
provider's status queue, which the beat drains.

Bodies: SMSC.ru form fields `id`, `phone`, `status`, `err`; SMS.ru form fields `data[N]` =
`sms_status\\n<sms_id>\\n<status code>` (the `hash` field, when sent, is checked against the api_id);
SMS Traffic form fields `sms_id`, `status`, `delivery_date`; SMS Aero a JSON object
`{"id": ..., "status": ...}` (bare, wrapped in `data`, or a list) or the same
as form or query fields; http_json `{"id": "...", "status": "delivered|undelivered|failed|...",
"reason": "..."}` or a list of them. GET carries the fields in the query string.

Answers, as each provider expects: 200 `text/plain` `OK` (SMSC.ru, SMS Traffic, SMS Aero), 200
`text/plain` `100` (SMS.ru), 200 `{"ok": true}` (http_json). An unknown provider code and a wrong or
missing token are both 403 `forbidden`. A body the provider's client cannot read, or an SMS.ru hash that
does not match, is 400 `bad_json` (the provider may retry it). Reports of messages we do not know are
acknowledged and ignored, as are reports that say "in progress" and events that are not reports (SMSC
posts incoming messages to the same URL). A disabled provider's reports are still taken.

The work is done in a task, after the answer: a report never moves a message out of a final status
(a second report for a delivered message changes nothing), and a report that comes before the send
task has recorded `sent` still lands: an SMSC report finds its message by our id even while it is
`sending`; an SMS.ru, SMS Aero or http_json report, whose id we only learn from the send answer, waits
until the send is recorded (up to an hour), then applies.
"""

_TOKEN_PARAM = {
    "name": "token",
    "in": "query",
    "required": True,
    "description": "The provider's callback_token.",
    "schema": {"type": "string"},
}
_CODE_PARAM = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
_ANSWERS = {
    "200": {
        "description": "Taken. The body is the provider's expected answer: `OK`, `100` (SMS.ru), or "
        '`{"ok": true}` (http_json).',
        "content": {
            "text/plain": {"schema": {"type": "string", "examples": ["OK", "100"]}},
            "application/json": {"schema": {"type": "object", "examples": [{"ok": True}]}},
        },
    },
    "404": {"description": "Not answered here: an unknown provider code is 403, like a wrong token."},
}
_PROBLEMS = {
    400: "The provider's client cannot read the report (`bad_json`).",
    403: "Unknown provider, or a wrong or missing token (`forbidden`).",
    503: "The database is unreachable (`unavailable`): the provider should send it again.",
}


def _extra(method: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"parameters": [_CODE_PARAM, _TOKEN_PARAM], "responses": _ANSWERS}
    if method == "POST":
        extra["requestBody"] = {
            "required": False,
            "description": "The provider's own report format (see the description).",
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "application/json": {"schema": {}},
            },
        }
    return extra


# --- the view -----------------------------------------------------------------------------------------


def _route(method: str) -> Any:
    return route(
        bp,
        method,
        RULE,
        summary=f"Take a provider's delivery report ({method})",
        tag=TAG,
        responses=_PROBLEMS,
        auth="none",
        description=DESCRIPTION,
        extra=_extra(method),
    )


@_route("GET")
@_route("POST")
def take_reports(code: str) -> Response:
    provider = _authenticated_provider(code, request.args.get("token", ""))
    parsed = _parse(provider, _incoming())
    items = [ReportItem.of(report).to_json() for report in parsed.reports]
    if items:
        _hand_over(provider.id, items)
    answer = parsed.answer
    return Response(answer.body, status=answer.status, content_type=answer.content_type)


def _authenticated_provider(code: str, token: str) -> Any:
    p = Provider.__table__
    with transaction() as conn:
        provider = conn.execute(select(p).where(p.c.code == code)).first()
    expected = callback_token_of(provider) if provider is not None else _DUMMY_TOKEN
    # Constant time: the comparison tells nothing about how much of a guess was right.
    if not hmac.compare_digest(token.encode(), expected.encode()) or provider is None:
        raise ApiError(403, Code.FORBIDDEN, "unknown provider or wrong token")
    return provider


def _incoming() -> IncomingRequest:
    form: dict[str, list[str]] = {}
    body_json: Any = None
    if request.mimetype in _FORM_TYPES:
        form = request.form.to_dict(flat=False)
    elif request.get_data(cache=True):
        # Some providers post JSON without saying so: try it whatever the declared type.
        body_json = request.get_json(force=True, silent=True)
    args = {name: values for name, values in request.args.to_dict(flat=False).items() if name != "token"}
    return IncomingRequest(
        method=request.method,
        args=args,
        form=form,
        json=body_json,
        headers={name: value for name, value in request.headers.items() if name.lower() != "authorization"},
        body=request.get_data(cache=True),
    )


def _parse(provider: Any, incoming: IncomingRequest) -> ParsedReports:
    try:
        return client_of(provider).parse_report(incoming)
    except ProviderError as exc:
        log.info("unreadable report for provider %s: %s", provider.code, exc.reason)
        raise ApiError(400, Code.BAD_JSON, f"the report cannot be read: {exc.message}") from None
    except Exception as exc:  # a client that chokes on a strange body must not answer 500
        log.warning("report for provider %s could not be parsed: %s", provider.code, type(exc).__name__)
        raise ApiError(400, Code.BAD_JSON, "the report cannot be read") from None


def _hand_over(provider_id: int, items: list[dict[str, Any]]) -> None:
    """Publish the reports to the status queue; with the broker down, apply them here, so that the
    provider (which may never send a report again) is still answered with what it expects."""
    from smsqueue.tasks.doorbell import publish_now
    from smsqueue.tasks.reports import process

    try:
        publish_now(Tasks.PROCESS_REPORTS, (provider_id, items))
    except Exception as exc:
        log.warning("could not publish %d report(s), applying them now: %s", len(items), type(exc).__name__)
        process(provider_id, items)
