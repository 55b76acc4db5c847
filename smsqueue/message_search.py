"""Finding messages: the filters of the messages list and its newest-first page with a keyset cursor.

The API's list and the operator console both call these, so they find the same messages the same way
(and the console's pages take the API's cursors). No Flask here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from smsqueue.errors import ApiError, FieldCode, FieldError, validation_error
from smsqueue.message_fields import parse_timestamp
from smsqueue.messages import messages_t

m = messages_t.c
CREATED = "c"  # cursor kind of the newest-first listing
CHANGES = "u"  # cursor kind of the updated_after listing (see api/messages._list_changes)


# --- cursors ------------------------------------------------------------------------------------------


def b64(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def invalid_cursor(message: str = "not a cursor from this listing") -> ApiError:
    return validation_error([FieldError("cursor", FieldCode.INVALID_CURSOR, message)])


BIGINT_MAX = 2**63 - 1


def is_cursor_int(value: Any) -> bool:
    """Whether a cursor's number (a row id, a change position) can go into a bigint comparison: a
    forged cursor may carry a float, a bool, a negative number or one beyond bigint."""
    return type(value) is int and 0 <= value <= BIGINT_MAX


def cursor_time(at: Any) -> datetime:
    """A cursor's time, read as any time of the API (parse_timestamp: in UTC). ValueError otherwise."""
    if not isinstance(at, str):
        raise ValueError
    return parse_timestamp(at)  # its error is a ValueError too


def encode_cursor(mode: str, at: datetime, pk: int) -> str:
    return b64([mode, at.isoformat(), pk])


def decode_cursor(cursor: str, mode: str) -> tuple[datetime, int]:
    try:
        value = unb64(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None
    if isinstance(value, list) and value[:1] == [CHANGES] and mode != CHANGES:
        raise invalid_cursor("a cursor of an updated_after listing: send updated_after with it")
    try:
        kind, at, pk = value
        if kind != mode or not is_cursor_int(pk):
            raise ValueError
        return cursor_time(at), pk
    except (ValueError, TypeError):
        raise invalid_cursor() from None


# --- filters and the page -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """What to look for. `entity_ids` None: any entity; an entity key's caller passes its entities."""

    entity_ids: Collection[int] | None = None
    statuses: Collection[str] = ()
    to: str | None = None  # E.164
    reference: str | None = None
    debtor: str | None = None
    created_after: datetime | None = None  # exclusive
    created_before: datetime | None = None  # exclusive
    job_id: Any = None  # a job's public id (UUID)


def conditions(f: MessageFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.entity_ids is not None:
        ids = sorted(f.entity_ids)
        out.append(m.legal_entity_id == ids[0] if len(ids) == 1 else m.legal_entity_id.in_(ids))
    if f.statuses:
        out.append(m.status.in_(list(f.statuses)))
    if f.to is not None:
        out.append(m.recipient == f.to)
    if f.reference is not None:
        out.append(m.reference == f.reference)
    if f.debtor is not None:
        out.append(m.debtor == f.debtor)
    if f.created_after is not None:
        out.append(m.created_at > f.created_after)
    if f.created_before is not None:
        out.append(m.created_at < f.created_before)
    if f.job_id is not None:
        out.append(m.job_id == f.job_id)
    return out


def older_than(cursor: str) -> ColumnElement[bool]:
    """Messages after `cursor` in newest-first order."""
    at, pk = decode_cursor(cursor, CREATED)
    return or_(m.created_at < at, and_(m.created_at == at, m.pk < pk))


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def newest_first(conn: Connection, where: list[ColumnElement[bool]], cursor: str | None, limit: int) -> Page:
    """Messages matching `where`, newest first (created_at, pk), after `cursor`: at most `limit` rows
    and the cursor of the next page (None on the last one). Reads the (entity,) created_at, pk indexes."""
    where = list(where)
    if cursor is not None:
        where.append(older_than(cursor))
    stmt = select(messages_t).where(*where).order_by(m.created_at.desc(), m.pk.desc()).limit(limit + 1)
    rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(CREATED, rows[-1].created_at, rows[-1].pk) if more and rows else None)
