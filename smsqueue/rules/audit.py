"""The audit log of admin changes: the one function that records one (`record`), called by the services
in the transaction of the change itself, so a change and its entry commit or roll back together.

Who made it is this request's (or command's) actor, set once by the HTTP layer after authentication
(`set_actor`), so services need no extra argument. Secrets are recorded only as "***".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from smsqueue.models import AuditEntry

MASKED = "***"
_actor: ContextVar[tuple[int | None, str | None]] = ContextVar("audit_actor", default=(None, "cli"))


def set_actor(key_id: int | None, name: str | None) -> None:
    """Who the changes recorded from now on in this context are made by (an API key, or the CLI)."""
    _actor.set((key_id, name))


def _plain(value: Any) -> Any:
    """A JSON value for the log: times as ISO-8601, everything else as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], secrets: Iterable[str] = ()
) -> dict[str, list[Any]]:
    """{field: [before, after]} of the fields whose value changed; a secret field as ["***", "***"]."""
    secret = set(secrets)
    out: dict[str, list[Any]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret:
            out[name] = [MASKED if old is not None else None, MASKED if new is not None else None]
        else:
            out[name] = [_plain(old), _plain(new)]
    return out


def record(
    session: Session | Connection, action: str, object_: str, changes: Mapping[str, Any] | None = None
) -> None:
    """Add one entry (`action` like "legal_entity.update", `object_` the object's code or id) to the
    transaction of the session (ORM services) or connection (Core services: the stop list, templates).
    An update that changed nothing is not recorded."""
    if changes is not None and not changes and action.endswith(".update"):
        return
    key_id, key_name = _actor.get()
    values = {"key_id": key_id, "key_name": key_name, "action": action, "object": object_}
    values["changes"] = dict(changes or {})
    if isinstance(session, Connection):
        session.execute(insert(AuditEntry.__table__).values(**values))
        return
    session.add(AuditEntry(**values))
    session.flush()
