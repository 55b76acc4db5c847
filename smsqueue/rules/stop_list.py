"""The stop list (230-FZ art. 7 and 8): numbers and debtors an entity, or its limit group, may not write
to. Written through the admin API; read by the sender's claim, which rejects a stopped message with
`stop_list` before it is counted or handed to a provider.

Whose list an entry is on is its `scope`: the entity's limit group when it has one (entities of a group
share one list), else the entity itself. `scopes_of` is the one place that decides it. An entity in a
group also keeps seeing the entries made for it alone before it joined: a refusal once recorded never
stops applying because of a change of settings.

The send-time check is one indexed query per claimed batch (`stopped`): the unique (scope, kind, value)
index answers it, whatever the number of entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError

from smsqueue.models.compliance import STOP_REASONS, StopListEntry
from smsqueue.rules import audit
from smsqueue.rules.subjects import entity_scope, scope_of

entries_t = StopListEntry.__table__
s = entries_t.c

NUMBER = "number"
DEBTOR = "debtor"
REASONS = STOP_REASONS
EDITABLE = ("reason", "note", "document", "until")


# --- whose list -----------------------------------------------------------------------------------------


def scopes_of(entity: Any) -> tuple[str, ...]:
    """The scopes of an entity's stop list, the one new entries go to first: its limit scope (its limit
    group's, as its counts), then its own (entries made before it joined the group)."""
    scope, own = scope_of(entity), entity_scope(entity.id)
    return (scope, own) if scope != own else (own,)


# --- reading --------------------------------------------------------------------------------------------


def is_active(until: datetime | None, at: datetime) -> bool:
    """An entry stops messages while its `until` has not passed (null: for good)."""
    return until is None or until > at


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message the sender is about to claim, as the check needs it."""

    pk: int
    scopes: Sequence[str]
    recipient: str
    debtor: str | None = None


# PostgreSQL: the keys travel as three arrays, so the statement is one cached plan whatever the batch
# size (as in rules.limits); each key is one probe of the unique (scope, kind, value) index.
_PG_STOPPED = text(
    "SELECT e.scope, e.kind, e.value FROM stop_list_entries AS e "
    "JOIN unnest(CAST(:s AS varchar[]), CAST(:k AS varchar[]), CAST(:v AS varchar[])) AS q(s, k, v) "
    "ON e.scope = q.s AND e.kind = q.k AND e.value = q.v "
    "WHERE e.until IS NULL OR e.until > :at"
).bindparams(bindparam("at", type_=StopListEntry.__table__.c.until.type))


def stopped(conn: Connection, candidates: Sequence[Candidate], at: datetime) -> set[int]:
    """The pks of the candidates whose number or debtor is on a stop list in force at `at`. One query
    for the batch, each key found through the unique (scope, kind, value) index."""
    keys: dict[tuple[str, str, str], list[int]] = {}
    for c in candidates:
        for scope in c.scopes:
            keys.setdefault((scope, NUMBER, c.recipient), []).append(c.pk)
            if c.debtor:
                keys.setdefault((scope, DEBTOR, c.debtor), []).append(c.pk)
    if not keys:
        return set()
    wanted = sorted(keys)
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _PG_STOPPED,
            {"s": [k[0] for k in wanted], "k": [k[1] for k in wanted], "v": [k[2] for k in wanted], "at": at},
        )
    else:
        rows = conn.execute(
            select(s.scope, s.kind, s.value).where(
                tuple_(s.scope, s.kind, s.value).in_(wanted), or_(s.until.is_(None), s.until > at)
            )
        )
    out: set[int] = set()
    for r in rows:
        out.update(keys[(r.scope, r.kind, r.value)])
    return out


def find(conn: Connection, scopes: Sequence[str], kind: str, value: str) -> Any | None:
    """An entity's entry for this number or debtor (its group's first), or None."""
    rows = conn.execute(
        select(entries_t).where(s.scope.in_(list(scopes)), s.kind == kind, s.value == value)
    ).all()
    order = {scope: i for i, scope in enumerate(scopes)}
    return min(rows, key=lambda r: order[r.scope]) if rows else None


@dataclass(frozen=True, slots=True)
class ListFilter:
    to: str | None = None  # E.164
    debtor: str | None = None
    reason: str | None = None


def page(
    conn: Connection, scopes: Sequence[str], f: ListFilter, after_id: int | None, limit: int
) -> tuple[list[Any], int | None]:
    """Entries of these scopes, newest first, after the entry `after_id`; and the id to go on after (None
    on the last page)."""
    where = [s.scope.in_(list(scopes))]
    if f.to is not None:
        where += [s.kind == NUMBER, s.value == f.to]
    if f.debtor is not None:
        where += [s.kind == DEBTOR, s.value == f.debtor]
    if f.reason is not None:
        where.append(s.reason == f.reason)
    if after_id is not None:
        where.append(s.id < after_id)
    rows = conn.execute(select(entries_t).where(*where).order_by(s.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


# --- writing --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryIn:
    kind: str  # NUMBER | DEBTOR
    value: str  # E.164 number or debtor id
    reason: str
    note: str | None = None
    document: str | None = None
    until: datetime | None = None


def put(conn: Connection, entity: Any, entry: EntryIn, at: datetime) -> tuple[Any, bool]:
    """Add the entry to the entity's list, or update it where it is: (the row, whether it is new). A
    concurrent PUT of the same new entry loses the insert race and updates the winner's row instead."""
    scopes = scopes_of(entity)
    values: Mapping[str, Any] = _values(entry, entity, at)
    for _ in range(2):
        current = find(conn, scopes, entry.kind, entry.value)
        if current is not None:
            conn.execute(update(entries_t).where(s.id == current.id).values(**values))
            row = conn.execute(select(entries_t).where(s.id == current.id)).one()
            _audit(conn, entity, row, current)
            return row, False
        try:
            with conn.begin_nested():
                new_id = conn.execute(
                    insert(entries_t)
                    .values(scope=scopes[0], kind=entry.kind, value=entry.value, created_at=at, **values)
                    .returning(s.id)
                ).scalar_one()
        except IntegrityError:
            continue  # made a moment ago by another request: update it
        row = conn.execute(select(entries_t).where(s.id == new_id)).one()
        _audit(conn, entity, row, None)
        return row, True
    raise RuntimeError("stop list entry neither found nor inserted")  # pragma: no cover - two lost races


def put_many(
    conn: Connection, entity: Any, entries: Sequence[EntryIn], at: datetime
) -> list[tuple[Any, bool]]:
    """`put` for a batch, in order, in a few statements whatever its size: one read of the entries that
    exist, one UPDATE (executemany) of those, one INSERT of the new ones, one read of the results. A key
    repeated in the batch takes its last values; the first time is the one that may be new. An INSERT
    that loses a race with a concurrent request falls back to `put` one by one."""
    if not entries:
        return []
    scopes = scopes_of(entity)
    order = {scope: i for i, scope in enumerate(scopes)}
    keys = sorted({(e.kind, e.value) for e in entries})
    existing: dict[tuple[str, str], Any] = {}
    for r in conn.execute(
        select(s.id, s.scope, s.kind, s.value, s.reason, s.note, s.document, s.until).where(
            s.scope.in_(list(scopes)), tuple_(s.kind, s.value).in_(keys)
        )
    ):
        key = (r.kind, r.value)
        if key not in existing or order[r.scope] < order[existing[key].scope]:
            existing[key] = r
    last = {(e.kind, e.value): e for e in entries}  # later entries win
    new_keys = [k for k in last if k not in existing]
    try:
        with conn.begin_nested():
            if existing:
                conn.execute(
                    update(entries_t).where(s.id == bindparam("row_id")),
                    [
                        {"row_id": existing[k].id, **_values(last[k], entity, at)}
                        for k in existing
                        if k in last
                    ],
                )
            ids = {k: r.id for k, r in existing.items()}
            if new_keys:
                made = conn.execute(
                    insert(entries_t).returning(s.id, s.kind, s.value, sort_by_parameter_order=True),
                    [
                        {
                            "scope": scopes[0],
                            "kind": k[0],
                            "value": k[1],
                            "created_at": at,
                            **_values(last[k], entity, at),
                        }
                        for k in new_keys
                    ],
                )
                ids.update({(r.kind, r.value): r.id for r in made})
    except IntegrityError:
        return [put(conn, entity, e, at) for e in entries]
    rows = {
        (r.kind, r.value): r for r in conn.execute(select(entries_t).where(s.id.in_(sorted(ids.values()))))
    }
    for key in last:
        _audit(conn, entity, rows[key], existing.get(key))
    out: list[tuple[Any, bool]] = []
    seen: set[tuple[str, str]] = set()
    for e in entries:
        key = (e.kind, e.value)
        out.append((rows[key], key not in existing and key not in seen))
        seen.add(key)
    return out


def _values(entry: EntryIn, entity: Any, at: datetime) -> dict[str, Any]:
    return {
        "reason": entry.reason,
        "note": entry.note,
        "document": entry.document,
        "until": entry.until,
        "legal_entity_id": entity.id,
        "updated_at": at,
    }


def remove(conn: Connection, entity: Any, kind: str, value: str) -> bool:
    """Take a number or debtor off the entity's list (wherever in its scopes it is). False if absent."""
    result = conn.execute(
        delete(entries_t).where(s.scope.in_(list(scopes_of(entity))), s.kind == kind, s.value == value)
    )
    if result.rowcount:
        audit.record(conn, "stop_list_entry.delete", _object(entity, kind, value), {})
    return bool(result.rowcount)


def _object(entity: Any, kind: str, value: str) -> str:
    return f"{entity.code}/{kind}/{value}"


def _state(row: Any) -> dict[str, Any]:
    return {"reason": row.reason, "note": row.note, "document": row.document, "until": row.until}


def _audit(conn: Connection, entity: Any, row: Any, before: Any | None) -> None:
    """The audit entry of a put: created (every field) or updated (the fields that changed)."""
    action = "stop_list_entry.create" if before is None else "stop_list_entry.update"
    old = {} if before is None else _state(before)
    audit.record(conn, action, _object(entity, row.kind, row.value), audit.diff(old, _state(row)))
