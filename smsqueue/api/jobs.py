"""The jobs API: a CSV file in (as the body or a multipart upload), read as a stream and spooled; its
progress, errors, cancel and the list of jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import IO, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import Field, field_validator
from werkzeug.exceptions import RequestEntityTooLarge

from smsqueue import entity_cache, job_files, job_rows, jobs
from smsqueue.api.http import principal, query_args, validate
from smsqueue.api.messages import resolve_entity, stored_template
from smsqueue.api.schemas import CallbackUrl, ProblemOut, Strict, Timestamp, check_send_at
from smsqueue.api.spec import route
from smsqueue.auth import Principal
from smsqueue.clock import iso
from smsqueue.errors import ApiError, Code, FieldCode, FieldError, not_found, validation_error
from smsqueue.message_search import b64, cursor_time, invalid_cursor, is_cursor_int, unb64
from smsqueue.statuses import JobStatus
from smsqueue.tasks.doorbell import ring_job

bp = Blueprint("jobs", __name__)
TAG = "Jobs"
ERRORS: dict[int, Any] = {401: ProblemOut, 403: ProblemOut, 422: ProblemOut}
MULTIPART_OVERHEAD = 1024 * 1024  # room for the parts' headers and the other fields
MIB = 1024 * 1024


class JobParams(Strict):
    legal_entity: str | None = Field(None, max_length=64, description="As for messages.")
    template: str | None = Field(None, max_length=64, description="A template code of the entity.")
    send_at: Timestamp | None = Field(None, description="Default `send_at` of the rows; a row's own wins.")
    callback_url: CallbackUrl | None = Field(None, description="Status webhooks of the job's messages.")
    name: str | None = Field(None, max_length=200)

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_send_at(value)


class JobOut(Strict):
    id: str
    name: str | None
    legal_entity: str
    status: JobStatus
    template: str | None
    send_at: datetime | None
    callback_url: str | None
    rows: int | None = Field(description="Known once the whole file has been read.")
    accepted: int
    invalid: int = Field(description="Rows found invalid (each listed in /errors).")
    by_status: dict[str, int] | None = Field(
        description="The job's messages by status; on GET /api/v1/jobs/{id} and cancel (null in lists)."
    )
    size_bytes: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobListOut(Strict):
    items: list[JobOut]
    next_cursor: str | None


class JobListQuery(Strict):
    legal_entity: str | None = Field(None, max_length=64)
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512)


class ErrorsQuery(Strict):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=512)


class JobErrorOut(Strict):
    row: int = Field(description="The row's record number in the file, the header being row 1.")
    field: str | None = Field(description="The column, or `row` for the row as a whole.")
    code: str
    message: str


class JobErrorsOut(Strict):
    items: list[JobErrorOut]
    next_cursor: str | None


def render_job(row: Any, by_status: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "legal_entity": entity_cache.entity_code(row.legal_entity_id),
        "status": row.status,
        "template": row.template,
        "send_at": iso(row.send_at),
        "callback_url": row.callback_url,
        "rows": row.rows,
        "accepted": row.accepted,
        "invalid": row.invalid,
        "by_status": by_status,
        "size_bytes": row.size_bytes,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


def _too_large() -> ApiError:
    return ApiError(
        413,
        Code.PAYLOAD_TOO_LARGE,
        f"the file is larger than {job_files.MAX_FILE // MIB} MiB",
        headers={"Connection": "close"},
    )


def _invalid_csv(message: str) -> ApiError:
    return validation_error([FieldError("file", job_files.INVALID_CSV, message)])


def _upload() -> tuple[dict[str, Any], IO[bytes]]:
    """The fields and the file's stream, by content type; 413 before reading a body declared too large."""
    mimetype = request.mimetype
    limit = job_files.MAX_FILE + (MULTIPART_OVERHEAD if mimetype == "multipart/form-data" else 0)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large()
    request.max_content_length = limit  # this endpoint's own limit, not the JSON bodies' 16 MiB
    fields = query_args(JobParams)
    if mimetype in ("text/csv", "application/csv", "text/plain"):
        return fields, request.stream
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        fields.update({k: v for k, v in request.form.items()})
        if upload is None:
            raise validation_error(
                [FieldError("file", FieldCode.REQUIRED, "send the CSV as the `file` part")]
            )
        return fields, upload.stream
    raise ApiError(415, Code.UNSUPPORTED_MEDIA_TYPE, "send the CSV as text/csv, or as multipart/form-data")


@route(
    bp,
    "POST",
    "/api/v1/jobs",
    summary="Send a CSV file",
    tag=TAG,
    query=JobParams,
    responses={202: JobOut, 404: ProblemOut, 413: ProblemOut, 415: ProblemOut, **ERRORS},
    extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
    description="The file as a `text/csv` body (fields in the query) or a multipart `file` part (fields as "
    "parts or in the query); up to 256 MiB (413 payload_too_large above). UTF-8 (a BOM is allowed), `,` "
    "or `;` separated (decided on the header row), with a header row: `to`, then `text` or the "
    "template's placeholders by name, optionally `reference`, `send_at`, `valid_until`, "
    "`recipient_timezone`; other columns are ignored. 422 invalid_csv (field `file`) at once, storing "
    "nothing, for an empty file, a file with a header and no rows, one that is not UTF-8 or holds NUL "
    "characters, a header without `to`, without `text` (no template) or without a column for one of "
    "the template's placeholders, or naming a column twice. Rows are read by a worker: a bad row is "
    "counted in `invalid` and listed in /errors (codes as for messages, plus `too_many_fields` and "
    "`duplicate_reference` for a `reference` an earlier accepted row of the job has; an empty "
    "placeholder cell is `missing_variable`). Blank lines are skipped, and row numbers count records "
    "(a quoted cell may span lines), the header being row 1.",
)
def create_job() -> Response:
    fields, stream = _upload()
    job = start_job(principal(), fields, stream)
    response = jsonify(render_job(job, {}))
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return response


def start_job(who: Principal, fields: dict[str, Any], stream: IO[bytes]) -> Any:
    """Create a job from `fields` (`JobParams`) and the CSV `stream` for the key `who`, and ring a worker
    to run it: the API's POST and the console's upload both come here. Raises ApiError (422 with field
    errors, 404 for an unknown template, 413)."""
    params = validate(JobParams, fields)
    entity = resolve_entity(params.legal_entity, who)
    template_text = None if params.template is None else stored_template(entity.id, params.template)
    try:
        header = job_files.read_header(stream)
        job = jobs.create(
            entity_id=entity.id,
            header=header,
            stream=stream,
            name=params.name,
            template=params.template,
            template_text=template_text,
            send_at=params.send_at,
            callback_url=params.callback_url or entity.callback_url,
        )
    except (job_files.CsvProblem, job_rows.HeaderProblem) as exc:
        raise _invalid_csv(str(exc)) from None
    except (job_files.TooLarge, RequestEntityTooLarge):  # the latter: a chunked body over the limit
        raise _too_large() from None
    ring_job(job.pk)
    return job


def _job(job_id: str, who: Principal) -> Any:
    try:
        ident = uuid.UUID(job_id)
    except ValueError:
        raise not_found("job") from None
    job = jobs.find(ident)
    if job is None or not who.may_use(job.legal_entity_id):
        raise not_found("job")  # another entity's job is not revealed
    return job


@route(
    bp,
    "GET",
    "/api/v1/jobs/<job_id>",
    summary="Read a job's progress",
    tag=TAG,
    responses={200: JobOut, 404: ProblemOut, 401: ProblemOut},
    description="`accepted + invalid` grows to `rows` as the file is read; `done` once every row was "
    "accepted or found invalid (the messages then go on like any other: see `by_status`).",
)
def get_job(job_id: str) -> Response:
    job = _job(job_id, principal())
    return jsonify(render_job(job, jobs.by_status(job.id)))


@route(
    bp,
    "POST",
    "/api/v1/jobs/<job_id>/cancel",
    summary="Cancel a job",
    tag=TAG,
    responses={200: JobOut, 404: ProblemOut, 401: ProblemOut},
    description="Stops reading the file and cancels the job's messages still queued or scheduled "
    "(reason canceled_by_client); messages already sending or later go on. The job's status becomes "
    "`canceled` (also for a job that was done: its waiting messages are canceled). Canceling again "
    "changes nothing.",
)
def cancel_job(job_id: str) -> Response:
    job = _job(job_id, principal())
    jobs.cancel(job.pk)
    job = jobs.find(job.id)
    return jsonify(render_job(job, jobs.by_status(job.id)))


def _decode(cursor: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    try:
        value = unb64(cursor)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise invalid_cursor() from None
    if not isinstance(value, list) or value[:1] != [kind] or len(value) != len(types) + 1:
        raise invalid_cursor()
    if not all(isinstance(v, t) for v, t in zip(value[1:], types, strict=True)):
        raise invalid_cursor()
    return value[1:]


@route(
    bp,
    "GET",
    "/api/v1/jobs",
    summary="List jobs",
    tag=TAG,
    query=JobListQuery,
    responses={200: JobListOut, **ERRORS},
    description="Newest first; an entity key sees its entities' jobs. `by_status` is null here.",
)
def list_jobs() -> Response:
    who = principal()
    q = validate(JobListQuery, query_args(JobListQuery))
    entity_ids: list[int] | None = None if who.is_admin else sorted(who.entity_ids)
    if q.legal_entity is not None:
        info = entity_cache.entity(q.legal_entity)
        if info is None or not who.may_use(info.id):
            return jsonify({"items": [], "next_cursor": None})
        entity_ids = [info.id]
    after = None
    if q.cursor is not None:
        at, pk = _decode(q.cursor, "j", (str, int))
        try:
            if not is_cursor_int(pk):
                raise ValueError
            after = (cursor_time(at), pk)
        except ValueError:
            raise invalid_cursor() from None
    rows = jobs.page(entity_ids, after, q.limit)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    cursor = b64(["j", rows[-1].created_at.isoformat(), rows[-1].pk]) if more else None
    return jsonify({"items": [render_job(r) for r in rows], "next_cursor": cursor})


@route(
    bp,
    "GET",
    "/api/v1/jobs/<job_id>/errors",
    summary="A job's invalid rows",
    tag=TAG,
    query=ErrorsQuery,
    responses={200: JobErrorsOut, 404: ProblemOut, **ERRORS},
    description="By row, one item per invalid field (a row may have several); `row` counts the header as "
    "row 1.",
)
def job_errors(job_id: str) -> Response:
    job = _job(job_id, principal())
    q = validate(ErrorsQuery, query_args(ErrorsQuery))
    after = tuple(_decode(q.cursor, "e", (int, int))) if q.cursor is not None else None
    rows = jobs.errors_page(job.pk, after, q.limit)  # type: ignore[arg-type]
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [{"row": r.row, "field": r.field, "code": r.code, "message": r.message} for r in rows]
    return jsonify({"items": items, "next_cursor": b64(["e", rows[-1].row, rows[-1].id]) if more else None})
