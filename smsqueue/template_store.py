"""Templates of the legal entities, stored: read, create, replace, delete. No Flask here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from smsqueue import entity_cache
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.models import Template
from smsqueue.rules import audit
from smsqueue.templates import compile_template

templates_t = Template.__table__
t = templates_t.c


class DuplicateTemplate(ValueError):
    """The entity has a template of that code already."""


def get(entity_id: int, code: str, conn: Connection | None = None) -> Any | None:
    stmt = select(templates_t).where(t.legal_entity_id == entity_id, t.code == code)
    if conn is not None:
        return conn.execute(stmt).first()
    with transaction() as own:
        return own.execute(stmt).first()


def list_of(entity_id: int) -> list[Any]:
    with transaction() as conn:
        return list(conn.execute(select(templates_t).where(t.legal_entity_id == entity_id).order_by(t.code)))


def create(entity_id: int, code: str, text: str, description: str | None) -> Any:
    compile_template(text)  # raises TemplateError on a malformed text
    at = now()
    try:
        with transaction() as conn:
            conn.execute(
                insert(templates_t).values(
                    legal_entity_id=entity_id,
                    code=code,
                    text=text,
                    description=description,
                    created_at=at,
                    updated_at=at,
                )
            )
            row = get(entity_id, code, conn)
            _audit(conn, "template.create", entity_id, code, None, row)
            return row
    except IntegrityError:
        raise DuplicateTemplate(code) from None


def replace(entity_id: int, code: str, text: str, description: str | None) -> Any | None:
    """The template with its new text and description; None if the entity has none of that code."""
    compile_template(text)
    with transaction() as conn:
        before = get(entity_id, code, conn)
        if before is None:
            return None
        conn.execute(
            update(templates_t)
            .where(t.legal_entity_id == entity_id, t.code == code)
            .values(text=text, description=description, updated_at=now())
        )
        row = get(entity_id, code, conn)
        _audit(conn, "template.update", entity_id, code, before, row)
        return row


def remove(entity_id: int, code: str) -> bool:
    with transaction() as conn:
        done = conn.execute(delete(templates_t).where(t.legal_entity_id == entity_id, t.code == code))
        if done.rowcount:
            _audit(conn, "template.delete", entity_id, code, None, None)
        return bool(done.rowcount)


def _state(row: Any) -> dict[str, Any]:
    return {} if row is None else {"text": row.text, "description": row.description}


def _audit(conn: Connection, action: str, entity_id: int, code: str, before: Any, after: Any) -> None:
    """The audit entry of a template change (API.md "Audit"): object `<entity>/<template>`."""
    changes = {} if action.endswith(".delete") else audit.diff(_state(before), _state(after))
    audit.record(conn, action, f"{entity_cache.entity_code(entity_id)}/{code}", changes)
