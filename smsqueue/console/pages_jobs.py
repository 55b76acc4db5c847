"""CSV jobs: the list (newest first; an entity key sees its own entities' jobs), the upload form, and a
job's page with its progress (refreshed by console.js with plain fetch of `?part=1`) and its invalid
rows. The upload goes through `api.jobs.start_job`, the function the API's POST /api/v1/jobs calls: the
same checks and errors (shown next to the field), the same job, and the same ring to a worker."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for

import smsqueue.console.strings as t
from smsqueue import jobs
from smsqueue.api.jobs import render_job, start_job
from smsqueue.console import queries
from smsqueue.console.blueprint import bp, principal
from smsqueue.errors import ApiError
from smsqueue.statuses import JOB_UNFINISHED

LIST_SIZE = 50
ERRORS_SHOWN = 200
REFRESH_SECONDS = 2
FIELDS = ("legal_entity", "template", "name")


def _entities() -> list[tuple[str, str]]:
    with queries.bounded() as conn:
        names = queries.names(conn, principal())
    return sorted(names.entities.values())


def _list(errors: dict[str, str] | None = None, typed: dict[str, str] | None = None) -> str:
    who = principal()
    rows = jobs.page(None if who.is_admin else sorted(who.entity_ids), None, LIST_SIZE)[:LIST_SIZE]
    return render_template(
        "console/jobs.html",
        items=[render_job(r) for r in rows],
        entities=_entities(),
        errors=errors or {},
        typed=typed or {},
    )


@bp.get("/jobs")
def jobs_list() -> str:
    return _list()


@bp.post("/jobs")
def job_upload() -> Response | tuple[str, int]:
    typed = {name: request.form.get(name, "").strip() for name in FIELDS}
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _list({"file": t.job_file_required}, typed), 422
    fields = {name: value for name, value in typed.items() if value}
    try:
        job = start_job(principal(), fields, upload.stream)
    except ApiError as exc:
        return _list(_errors(exc), typed), exc.status if exc.status in (413, 422) else 422
    return redirect(url_for("console.job", job_id=str(job.id)))


def _errors(exc: ApiError) -> dict[str, str]:
    if exc.status in (403, 404):  # an entity the key may not use, or none of that code
        return {"legal_entity": t.job_unknown_entity}
    if exc.status == 413:
        return {"file": t.job_too_large}
    out: dict[str, str] = {}
    for error in exc.errors or []:
        out.setdefault(error.field or "file", t.field_error(error.code, error.message))
    return out


def _visible(job_id: str) -> Any:
    try:
        ident = uuid.UUID(job_id)
    except ValueError:
        abort(404)
    job = jobs.find(ident)
    if job is None or not principal().may_use(job.legal_entity_id):
        abort(404)  # another entity's job is not told apart from none
    return job


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    row = _visible(job_id)
    part = bool(request.args.get("part"))
    running = row.status in JOB_UNFINISHED
    # The counts by status read every message of the job (about 200 ms for 100,000): the part reloaded
    # every few seconds while the file is read leaves them out; the full page and the final part have them.
    rendered = render_job(row, None if part and running else jobs.by_status(row.id))
    context: dict[str, Any] = {
        "job": rendered,
        "running": running,
        "done_rows": rendered["accepted"] + rendered["invalid"],
        "refresh_seconds": REFRESH_SECONDS,
    }
    if part:
        return render_template("console/job_part.html", **context)
    errors = jobs.errors_page(row.pk, None, ERRORS_SHOWN)
    context["row_errors"] = errors[:ERRORS_SHOWN]
    context["more_errors"] = len(errors) > ERRORS_SHOWN
    return render_template("console/job.html", **context)
