"""Message search (number, reference, id, status, entity, creation time; pages by the API's keyset cursor)
and the message page (text, every status with its time, reason and the provider's answers, webhooks)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

import smsqueue.console.strings as t
from smsqueue import jobs
from smsqueue.auth import Principal
from smsqueue.console import queries
from smsqueue.console import session as console_session
from smsqueue.console.blueprint import bp, principal
from smsqueue.console.timefmt import as_input, from_input
from smsqueue.errors import ApiError
from smsqueue.message_search import MessageFilter, Page
from smsqueue.phones import PhoneError, normalize_phone
from smsqueue.statuses import Status

PREVIEW = 70  # characters of a text shown in the list
MAX_FIELD = 128  # the longest reference; nothing typed into the form is longer


@dataclass
class SearchForm:
    """The search form as typed, what it means, and what is wrong with it (field -> message)."""

    values: dict[str, str]
    statuses: list[str]
    to: str | None = None
    reference: str | None = None
    debtor: str | None = None
    job: uuid.UUID | None = None
    ident: uuid.UUID | None = None
    entity: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.values.values()) and not self.statuses


def read_form(args: MultiDict[str, str], zone: ZoneInfo) -> SearchForm:
    names = ("to", "reference", "debtor", "job", "id", "entity", "after", "before")
    values = {n: (args.get(n) or "").strip()[:MAX_FIELD] for n in names}
    known = {s.value for s in Status}
    form = SearchForm(values, [s for s in args.getlist("status") if s in known])
    if values["to"]:
        try:
            form.to = normalize_phone(values["to"])
        except PhoneError:
            form.errors["to"] = t.invalid_phone
    form.reference = values["reference"] or None
    form.debtor = values["debtor"] or None
    form.entity = values["entity"] or None
    if values["job"]:
        try:
            form.job = uuid.UUID(values["job"])
        except ValueError:
            form.errors["job"] = t.invalid_job
    if values["id"]:
        try:
            form.ident = uuid.UUID(values["id"])
        except ValueError:
            form.errors["id"] = t.invalid_id
    for name in ("after", "before"):
        if values[name]:
            try:
                setattr(form, name, from_input(values[name], zone))
            except ValueError:
                form.errors[name] = t.invalid_time
    return form


def message_filter(form: SearchForm, who: Principal, names: queries.Names) -> MessageFilter | None:
    """The filter of a valid form within the key's entities; None when no message can match (an entity
    the key may not see, or unknown)."""
    entity_ids: list[int] | None
    if form.entity is not None:
        entity_id = names.entity_id(form.entity)  # `names` holds only the key's entities
        if entity_id is None:
            return None
        entity_ids = [entity_id]
    elif form.job is not None:
        entity_ids = None  # the caller has checked that the key may see the job: its messages are its own
    elif not who.is_admin:
        entity_ids = sorted(who.entity_ids)
    elif form.to is not None or form.reference is not None or form.debtor is not None:
        # Every entity, spelled out: the number, reference and debtor indexes begin with the entity.
        entity_ids = sorted(names.entities)
    else:
        entity_ids = None
    if entity_ids == []:
        return None
    return MessageFilter(
        entity_ids=entity_ids,
        statuses=form.statuses,
        to=form.to,
        reference=form.reference,
        debtor=form.debtor,
        job_id=form.job,  # the job index (job_id, job_row) leads; another entity's job finds nothing
        created_after=form.after,
        created_before=form.before,
    )


def _may_see_job(job_id: uuid.UUID, who: Principal) -> bool:
    job = jobs.find(job_id)
    return job is not None and who.may_use(job.legal_entity_id)


def _row(r: Any, names: queries.Names) -> dict[str, Any]:
    text = r.text if len(r.text) <= PREVIEW else r.text[: PREVIEW - 1] + "…"
    return {
        "id": str(r.id),
        "created_at": r.created_at,
        "to": r.recipient,
        "entity": names.entity_code(r.legal_entity_id),
        "status": r.status,
        "provider": names.provider_code(r.provider_id),
        "reference": r.reference,
        "debtor": r.debtor,
        "text": text,
    }


def _page_url(args: Mapping[str, Any], **changes: Any) -> str:
    params = MultiDict(args)
    for name, value in changes.items():
        params.poplist(name)
        if value is not None:
            params[name] = value
    return url_for("console.messages", **params.to_dict(flat=False))


@bp.get("/messages")
def messages() -> Response | str:
    who = principal()
    zone = console_session.zone()
    form = read_form(request.args, zone)
    notice = info = None
    rows: list[dict[str, Any]] = []
    next_url = None
    cursor = request.args.get("cursor") or None
    with queries.bounded() as conn:
        names = queries.names(conn, who)
        found = None
        if form.ident is not None and not form.errors:
            found = queries.message_by_id(conn, form.ident, who)
    if found is not None:
        return redirect(url_for("console.message", message_id=str(found.id)))
    f = message_filter(form, who, names) if form.ident is None and not form.errors else None
    if f is not None and form.job is not None and not _may_see_job(form.job, who):
        f = None
    if f is not None:
        page, notice, info, cursor = _search(f, cursor)
        if page is not None:
            rows = [_row(r, names) for r in page.rows]
            if page.next_cursor:
                next_url = _page_url(request.args, cursor=page.next_cursor)
    return render_template(
        "console/messages.html",
        form=form,
        inputs={**form.values, "after": as_input(form.after, zone), "before": as_input(form.before, zone)}
        if not form.errors
        else form.values,
        statuses=[(s.value, t.status(s.value)) for s in Status],
        entities=sorted((code, name) for code, name in names.entities.values()),
        rows=rows,
        next_url=next_url,
        first_url=_page_url(request.args, cursor=None) if cursor else None,
        notice=notice,
        info=info,
    )


def _search(f: MessageFilter, cursor: str | None) -> tuple[Page | None, str | None, str | None, str | None]:
    """A page of results (or None), an error and an information to show, and the cursor it started
    from; a cursor that is not ours starts over."""
    notice = None
    try:
        try:
            with queries.bounded() as conn:
                found = queries.search(conn, f, cursor)
        except ApiError:  # a cursor from elsewhere, or from an older version
            notice, cursor = t.invalid_cursor, None
            with queries.bounded() as conn:
                found = queries.search(conn, f, None)
    except queries.TooBroad:
        return None, t.too_broad, None, cursor
    info = None if found.scanned is None else t.scanned.format(count=f"{found.scanned:,}".replace(",", " "))
    return found.page, notice, info, cursor


@bp.get("/messages/<message_id>")
def message(message_id: str) -> str:
    who = principal()
    try:
        ident = uuid.UUID(message_id)
    except ValueError:
        abort(404)
    with queries.bounded() as conn:
        row = queries.message_by_id(conn, ident, who)
        if row is None:
            abort(404)
        names = queries.names(conn, who)
        events = queries.events(conn, row.pk)
        attempts = queries.webhook_attempts(conn, row.pk) if who.is_admin else None
    details = [
        (t.label_id, str(row.id)),
        (t.label_entity, names.entity_code(row.legal_entity_id)),
        (t.label_to, row.recipient),
        (t.label_sender, row.sender),
        (t.label_status, t.status(row.status)),
        (t.label_reason, t.reason(row.reason) if row.reason else None),
        (t.label_provider, names.provider_code(row.provider_id)),
        (t.label_provider_message_id, row.provider_message_id),
        (t.label_segments, f"{row.segments}"),
        (t.label_encoding, row.encoding),
        (t.label_reference, row.reference),
        (t.label_debtor, row.debtor),
        (t.label_recipient_timezone, row.recipient_timezone),
        (t.label_callback_url, row.callback_url),
    ]
    times = [
        (t.label_created, row.created_at),
        (t.label_updated, row.updated_at),
        (t.label_send_at, row.send_at),
        (t.label_valid_until, row.valid_until),
    ]
    return render_template(
        "console/message.html", row=row, details=details, times=times, events=events, attempts=attempts
    )
