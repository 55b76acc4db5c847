"""A new message's rows: what `NewMessage` holds, and how it and its first event are written (one
statement for a batch, a statement prepared once per connection for one, COPY for thousands). The
lifecycle (`messages`) takes it from here; its transitions write the later events.

Imports no Celery and no Flask.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from smsqueue.clock import now as clock_now
from smsqueue.config import settings
from smsqueue.db import prepare, prepared_statements
from smsqueue.models import Message, MessageEvent
from smsqueue.statuses import Status, WebhookState

messages_t = Message.__table__
events_t = MessageEvent.__table__


# Not frozen: a CSV job makes a million, and a frozen dataclass's __init__ sets each of its fields through
# object.__setattr__ (2.9 us a message against 0.6). Nothing changes one after it is made.
@dataclass(slots=True)
class NewMessage:
    id: uuid.UUID
    legal_entity_id: int
    to: str
    text: str
    segments: int
    encoding: str
    sender: str | None = None
    requested_provider_id: int | None = None
    send_at: datetime | None = None
    valid_until: datetime | None = None
    recipient_timezone: str | None = None
    callback_url: str | None = None
    reference: str | None = None
    debtor: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    template: str | None = None
    job_id: uuid.UUID | None = None
    job_row: int | None = None
    # The X-Request-Id of the HTTP request that made it: the worker's log lines for it carry it.
    request_id: str | None = None

    def initial_status(self, at: datetime) -> Status:
        return Status.SCHEDULED if self.send_at is not None and self.send_at > at else Status.QUEUED


@dataclass(slots=True)  # not frozen, as NewMessage: one per message stored
class Moved:
    """A message that took a new status: its row key, public id, the event's sequence number."""

    pk: int
    id: uuid.UUID
    seq: int
    status: Status


def ring_after_grace(at: datetime) -> datetime:
    """`ring_at` of a queued message rung at `at`: the sweep rings it again only if no worker has taken
    it within the grace period (its doorbell was lost)."""
    return at + timedelta(seconds=settings().lost_publish_after)


def due_at(status: Status, send_at: datetime | None, valid_until: datetime | None, at: datetime) -> datetime:
    """When a waiting message next needs attention: its send time, or its expiry if that comes first."""
    if status is Status.SCHEDULED and send_at is not None:
        return min(send_at, valid_until) if valid_until is not None else send_at
    return at


def event_row(
    pk: int,
    seq: int,
    status: Status,
    reason: str | None,
    at: datetime,
    webhook: bool,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "message_pk": pk,
        "seq": seq,
        "status": status.value,
        "reason": reason,
        "at": at,
        "detail": dict(detail) if detail else None,
        "webhook_state": WebhookState.PENDING.value if webhook else None,
        "webhook_next_at": at if webhook else None,
        "webhook_attempts": 0,
    }


def _rows(items: Sequence[NewMessage], at: datetime) -> tuple[list[dict[str, Any]], list[Status]]:
    rows = []
    statuses = []
    for item in items:
        status = item.initial_status(at)
        statuses.append(status)
        rows.append(
            {
                "id": item.id,
                "legal_entity_id": item.legal_entity_id,
                "recipient": item.to,
                "text": item.text,
                "sender": item.sender,
                "requested_provider_id": item.requested_provider_id,
                "status": status.value,
                "reason": None,
                "segments": item.segments,
                "encoding": item.encoding,
                "send_at": item.send_at,
                "valid_until": item.valid_until,
                "recipient_timezone": item.recipient_timezone,
                "callback_url": item.callback_url,
                "reference": item.reference,
                "debtor": item.debtor,
                "idempotency_key": item.idempotency_key,
                "request_hash": item.request_hash,
                "template": item.template,
                "job_id": item.job_id,
                "job_row": item.job_row,
                "request_id": item.request_id,
                "attempts": 0,
                "next_attempt_at": due_at(status, item.send_at, item.valid_until, at),
                "ring_at": ring_after_grace(at) if status is Status.QUEUED else None,
                "status_checks": 0,
                "event_seq": 1,
                "created_at": at,
                "updated_at": at,
            }
        )
    return rows, statuses


def insert_messages(conn: Connection, items: Sequence[NewMessage], at: datetime | None = None) -> list[Moved]:
    """Store new messages with their first event, in the caller's transaction. Same order as `items`."""
    if not items:
        return []
    at = at or clock_now()
    if conn.dialect.name == "postgresql" and len(items) >= COPY_FROM:
        return _copy_postgres(conn, items, at)
    rows, statuses = _rows(items, at)
    if conn.dialect.name == "postgresql":
        pks = _insert_postgres(conn, rows)
        return [Moved(pk, item.id, 1, status) for pk, status, item in zip(pks, statuses, items, strict=True)]
    if len(rows) == 1:
        pks = [conn.execute(insert(messages_t).returning(messages_t.c.pk), rows[0]).scalar_one()]
    else:
        result = conn.execute(
            insert(messages_t).returning(messages_t.c.pk, sort_by_parameter_order=True), rows
        )
        pks = list(result.scalars())
    events = [
        event_row(pk, 1, status, None, at, item.callback_url is not None, None)
        for pk, status, item in zip(pks, statuses, items, strict=True)
    ]
    conn.execute(insert(events_t), events)
    return [Moved(pk, item.id, 1, status) for pk, status, item in zip(pks, statuses, items, strict=True)]


_MESSAGE_COLUMNS = (
    "id", "legal_entity_id", "recipient", "text", "sender", "requested_provider_id", "status", "reason",
    "segments", "encoding", "send_at", "valid_until", "recipient_timezone", "callback_url", "reference",
    "debtor", "idempotency_key", "request_hash", "attempts", "next_attempt_at", "ring_at", "status_checks",
    "event_seq", "created_at", "updated_at", "template", "job_id", "job_row", "request_id",
)  # fmt: skip
_UUID_COLUMNS = frozenset({"id", "job_id"})
# Accepting messages is the API's hot path. On PostgreSQL the messages and their first events go in one
# statement (one round trip, whatever the batch size), as plain SQL: SQLAlchemy's statement machinery
# costs more than the insert itself. Rows come back keyed by id (RETURNING order is not guaranteed).
_INSERT_PG = (
    f"WITH m AS (INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES %s "
    "RETURNING pk, id, status, callback_url, created_at), "
    "e AS (INSERT INTO message_events (message_pk, seq, status, reason, at, detail, webhook_state, "
    "webhook_next_at, webhook_attempts) SELECT pk, 1, status, NULL, created_at, NULL, "
    f"CASE WHEN callback_url IS NULL THEN NULL ELSE '{WebhookState.PENDING.value}' END, "
    "CASE WHEN callback_url IS NULL THEN NULL ELSE created_at END, 0 FROM m) "
    "SELECT pk, id::text FROM m"
)
_VALUES_TEMPLATE = "(" + ", ".join("%s::uuid" if c in _UUID_COLUMNS else "%s" for c in _MESSAGE_COLUMNS) + ")"


def _params(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values in _MESSAGE_COLUMNS order, UUIDs as text (psycopg2 adapts no UUID by default)."""
    return tuple(
        (None if row[c] is None else str(row[c])) if c in _UUID_COLUMNS else row[c] for c in _MESSAGE_COLUMNS
    )


def _values(cursor: Any, rows: list[dict[str, Any]]) -> str:
    return b",".join(cursor.mogrify(_VALUES_TEMPLATE, _params(r)) for r in rows).decode()


_INSERT_ONE = prepare(
    "smsqueue_insert_message",
    _INSERT_PG.replace(
        "%s",
        "("
        + ", ".join(
            f"${i}" + ("::uuid" if c in _UUID_COLUMNS else "") for i, c in enumerate(_MESSAGE_COLUMNS, 1)
        )
        + ")",
        1,
    ),
)
_EXECUTE_ONE = f"EXECUTE {_INSERT_ONE} ({', '.join(['%s'] * len(_MESSAGE_COLUMNS))})"


def insert_messages_raw(cursor: Any, items: Sequence[NewMessage], at: datetime) -> list[Moved]:
    """`insert_messages` on PostgreSQL through a DB-API cursor (see db.raw_statement): one message
    through the statement prepared on the connection, several in one multi-row statement."""
    if not items:
        return []
    rows, statuses = _rows(items, at)
    if len(rows) == 1 and prepared_statements():
        cursor.execute(_EXECUTE_ONE, _params(rows[0]))
    else:
        cursor.execute(_INSERT_PG.replace("%s", _values(cursor, rows).replace("%", "%%"), 1), ())
    pks = {ident: pk for pk, ident in cursor.fetchall()}
    return [
        Moved(pks[str(item.id)], item.id, 1, status) for status, item in zip(statuses, items, strict=True)
    ]


def _insert_postgres(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        values = _values(cursor, rows)
    finally:
        cursor.close()
    # Executed through SQLAlchemy, so that its error translation and invalidation of a dead connection
    # apply as to any other statement; the driver still %-formats the text, hence the doubled "%".
    found = conn.exec_driver_sql(_INSERT_PG.replace("%s", values.replace("%", "%%"), 1)).all()
    pks = {ident: pk for pk, ident in found}
    return [pks[str(r["id"])] for r in rows]


# From this many rows (a CSV job's batch; never an API request, at most 1000) messages go in by COPY:
# no SQL text to build and parse per value, and each row's line is one f-string (a dict per row and a
# conversion per value cost more than the database's work). Their pks are taken from the sequence
# first, so that the events can name them and the order of `items` is kept.
COPY_FROM = 2000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"
_EVENT_COLUMNS = (
    "message_pk", "seq", "status", "reason", "at", "detail", "webhook_state", "webhook_next_at",
    "webhook_attempts",
)  # fmt: skip


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _c(value: str | None) -> str:
    """A text value as COPY's text format writes it (translated only when it has what to escape)."""
    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _n(value: Any) -> str:
    """A number, UUID or timestamp (nothing to escape) as COPY's text format writes it."""
    return _NULL if value is None else value.isoformat() if isinstance(value, datetime) else str(value)


# COPY's columns: the ones a row has of its own first, then those that a batch's rows mostly share
# (a job's entity, callback, template, send time...), written once for each run of rows sharing them.
_COPY_OWN = ("pk", "id", "recipient", "text", "reference", "debtor", "job_row", "segments", "encoding")
_COPY_SHARED = tuple(c for c in _MESSAGE_COLUMNS if c not in _COPY_OWN)


def _copy_lines(pks: list[int], items: Sequence[NewMessage], at: datetime) -> tuple[str, str, list[Status]]:
    """The rows and their first events as `_copy_postgres` sends them, in _COPY_OWN + _COPY_SHARED order
    and in _EVENT_COLUMNS order (what `_rows` and `event_row` make, column for column)."""
    stamp = at.isoformat()
    ring = ring_after_grace(at).isoformat()
    hooks = {False: f"{_NULL}\t{_NULL}", True: f"{WebhookState.PENDING.value}\t{stamp}"}
    event_tails = {  # seq, status, reason, at, detail, webhook_state, webhook_next_at, webhook_attempts
        (status, hooked): f"1\t{status.value}\t{_NULL}\t{stamp}\t{_NULL}\t{hook}\t0\n"
        for status in (Status.QUEUED, Status.SCHEDULED)
        for hooked, hook in hooks.items()
    }
    lines: list[str] = []
    events: list[str] = []
    statuses: list[Status] = []
    shared_key: tuple[Any, ...] | None = None
    shared = event_tail = ""  # set by the first row (its key differs from None)
    status = Status.QUEUED
    for pk, item in zip(pks, items, strict=True):
        key = (
            item.legal_entity_id, item.sender, item.requested_provider_id, item.send_at, item.valid_until,
            item.recipient_timezone, item.callback_url, item.idempotency_key, item.request_hash,
            item.template, item.job_id, item.request_id,
        )  # fmt: skip
        if key != shared_key:
            shared_key = key
            status = item.initial_status(at)
            queued = status is Status.QUEUED
            due = stamp if queued else due_at(status, item.send_at, item.valid_until, at).isoformat()
            shared = (  # in _COPY_SHARED order
                f"{item.legal_entity_id}\t{_c(item.sender)}\t{_n(item.requested_provider_id)}\t"
                f"{status.value}\t{_NULL}\t{_n(item.send_at)}\t{_n(item.valid_until)}\t"
                f"{_c(item.recipient_timezone)}\t{_c(item.callback_url)}\t{_c(item.idempotency_key)}\t"
                f"{_c(item.request_hash)}\t0\t{due}\t{ring if queued else _NULL}\t0\t1\t{stamp}\t{stamp}\t"
                f"{_c(item.template)}\t{_n(item.job_id)}\t{_c(item.request_id)}\n"
            )
            event_tail = event_tails[status, item.callback_url is not None]
        statuses.append(status)
        reference, debtor = item.reference, item.debtor
        lines.append(
            f"{pk}\t{item.id}\t{_c(item.to)}\t{_c(item.text)}\t"
            f"{_NULL if reference is None else _c(reference)}\t{_NULL if debtor is None else _c(debtor)}\t"
            f"{_n(item.job_row)}\t{item.segments}\t{item.encoding}\t{shared}"
        )
        events.append(f"{pk}\t{event_tail}")
    return "".join(lines), "".join(events), statuses


def _copy_postgres(conn: Connection, items: Sequence[NewMessage], at: datetime) -> list[Moved]:
    import io

    from sqlalchemy import exc

    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    module = conn.dialect.loaded_dbapi
    try:
        with dbapi.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('messages', 'pk')) FROM generate_series(1, %s)",
                (len(items),),
            )
            pks = [pk for (pk,) in cursor.fetchall()]
            text, events, statuses = _copy_lines(pks, items, at)
            # The whole text in one read: the driver takes the GIL back for each read of the file, and
            # beside a busy thread (a job's reader) each take waits for the switch interval (8 KiB
            # reads, the default, made a 5000-row batch wait out a few hundred of them).
            cursor.copy_expert(
                f"COPY messages ({', '.join(_COPY_OWN + _COPY_SHARED)}) FROM STDIN",
                io.StringIO(text),
                len(text) + 1,
            )
            cursor.copy_expert(
                f"COPY message_events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN",
                io.StringIO(events),
                len(events) + 1,
            )
    except module.Error as error:  # as SQLAlchemy's own types (IntegrityError...), like any statement's
        raise exc.DBAPIError.instance(None, None, error, module.Error) from error
    return [Moved(pk, item.id, 1, status) for pk, status, item in zip(pks, statuses, items, strict=True)]
