"""Accepting messages: validated requests become rows, with idempotency keys honoured.

The caller commits nothing itself: `store` runs one transaction for a whole batch, and the web layer
rings the doorbell for the stored messages after it has committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, select, tuple_
from sqlalchemy.exc import IntegrityError

from smsqueue.clock import now
from smsqueue.db import is_postgres, raw_statement, transaction
from smsqueue.errors import FieldError
from smsqueue.message_fields import check_text
from smsqueue.messages import Moved, NewMessage, insert_messages, insert_messages_raw, messages_t
from smsqueue.statuses import Status
from smsqueue.templates import TemplateError, render

m = messages_t.c


@dataclass(slots=True)  # not frozen: one per message (see message_rows.NewMessage)
class Prepared:
    new: NewMessage
    key: str | None  # idempotency key


@dataclass(slots=True)  # not frozen: one per message (see message_rows.NewMessage)
class Stored:
    pk: int
    id: Any
    status: Status
    replayed: bool  # an earlier message with the same key and body


@dataclass(frozen=True, slots=True)
class Conflict:
    """The idempotency key was used before with a different body."""

    pk: int


def request_hash(entity_code: str, body: dict[str, Any]) -> str:
    """What "the same body" means for an idempotency key: the request as sent, with the entity resolved
    (so leaving `legal_entity` out for a single-entity key is the same request as naming it)."""
    canonical = {k: v for k, v in body.items() if k not in ("legal_entity", "idempotency_key")}
    canonical["legal_entity"] = entity_code
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rendered_text(template_text: str, variables: Mapping[str, str | None]) -> str:
    """A template's text filled in and held to every rule of `text`: the one rendering of single
    messages, batch items and job rows. TemplateError lists what is wrong."""
    text = render(template_text, variables)
    try:
        return check_text(text)
    except PydanticCustomError as exc:
        raise TemplateError([FieldError("text", exc.type, f"the rendered text: {exc.message()}")]) from None


def store(
    items: list[Prepared],
    at: datetime | None = None,
    *,
    also: Callable[[Connection, list[Stored | Conflict]], None] | None = None,
) -> list[Stored | Conflict]:
    """Store the messages, in order; replays and conflicts for keys seen before. One transaction, which
    `also(conn, results)` joins (a job records its progress with the rows it stored)."""
    at = at or now()
    if also is None and is_postgres() and all(p.key is None for p in items):
        # No idempotency keys to look up: the hot path, one statement on a bare cursor.
        with raw_statement() as cursor:
            moved = insert_messages_raw(cursor, [p.new for p in items], at)
        return [Stored(mv.pk, mv.id, mv.status, False) for mv in moved]
    try:
        with transaction() as conn:
            results = _store(conn, items, at)
            if also is not None:
                also(conn, results)
            return results
    except IntegrityError:
        if also is not None:
            raise  # a job's (job, row) key taken: another worker has the job; let it be
        # A concurrent request took one of the keys between our check and our insert: look again.
        with transaction() as conn:
            return _store(conn, items, at)


def _store(conn: Connection, items: list[Prepared], at: datetime) -> list[Stored | Conflict]:
    existing = _existing(conn, [(p.new.legal_entity_id, p.key) for p in items if p.key])
    results: list[Stored | Conflict | None] = [None] * len(items)
    first_in_batch: dict[tuple[int, str], int] = {}
    fresh: list[int] = []  # indexes to insert
    for i, p in enumerate(items):
        if p.key is None:
            fresh.append(i)
            continue
        ident = (p.new.legal_entity_id, p.key)
        before = existing.get(ident)
        if before is not None:
            same = before.request_hash == p.new.request_hash
            results[i] = (
                Stored(before.pk, before.id, Status(before.status), True) if same else Conflict(before.pk)
            )
        elif ident in first_in_batch:
            continue  # settled below, once the first one has its row
        else:
            first_in_batch[ident] = i
            fresh.append(i)
    moved: list[Moved] = insert_messages(conn, [items[i].new for i in fresh], at)
    for i, mv in zip(fresh, moved, strict=True):
        results[i] = Stored(mv.pk, mv.id, mv.status, False)
    for i, p in enumerate(items):
        if results[i] is None and p.key is not None:
            first = items[first_in_batch[(p.new.legal_entity_id, p.key)]]
            done = results[first_in_batch[(p.new.legal_entity_id, p.key)]]
            assert isinstance(done, Stored)
            same = first.new.request_hash == p.new.request_hash
            results[i] = Stored(done.pk, done.id, done.status, True) if same else Conflict(done.pk)
    return [r for r in results if r is not None]


def _existing(conn: Connection, idents: list[tuple[int, str | None]]) -> dict[tuple[int, str], Any]:
    if not idents:
        return {}
    rows = conn.execute(
        select(m.pk, m.id, m.status, m.request_hash, m.legal_entity_id, m.idempotency_key).where(
            tuple_(m.legal_entity_id, m.idempotency_key).in_(sorted(set(idents)))  # type: ignore[arg-type]
        )
    )
    return {(r.legal_entity_id, r.idempotency_key): r for r in rows}
