"""A short-lived, per-process cache of legal entities (with the providers linked to each) and provider
codes for the request path, so that accepting a message costs no lookup queries. Writes through the admin
API call `invalidate()`; other processes see a change within TTL seconds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from smsqueue.db import transaction
from smsqueue.models import EntityProvider, LegalEntity, Provider

TTL = 5.0


@dataclass(frozen=True, slots=True)
class EntityInfo:
    id: int
    code: str
    active: bool
    callback_url: str | None
    timezone: str
    linked: dict[str, int]  # provider code -> provider id, for the providers linked to it
    # 137-FZ identification (rules.identification), applied to each message's text on the way in
    fz_enabled: bool = True
    fz_identification: str = "off"
    creditor_name: str | None = None
    contact_phone: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    loaded_at: float
    by_code: dict[str, EntityInfo]
    entity_codes: dict[int, str]
    provider_codes: dict[int, str]


_lock = threading.Lock()
_snapshot: Snapshot | None = None


def _entity_infos(conn: Connection, where: Any = None) -> dict[str, EntityInfo]:
    e, ep, p = LegalEntity.__table__.c, EntityProvider.__table__.c, Provider.__table__.c
    query = select(
        e.id,
        e.code,
        e.active,
        e.callback_url,
        e.timezone,
        e.fz_enabled,
        e.fz_identification,
        e.creditor_name,
        e.contact_phone,
    )
    links_query = select(ep.legal_entity_id, p.id, p.code).join(Provider.__table__, p.id == ep.provider_id)
    if where is not None:
        query = query.where(where)
        links_query = links_query.where(ep.legal_entity_id.in_(select(e.id).where(where)))
    linked: dict[int, dict[str, int]] = {}
    for link in conn.execute(links_query):
        linked.setdefault(link.legal_entity_id, {})[link.code] = link.id
    return {
        r.code: EntityInfo(
            r.id,
            r.code,
            r.active,
            r.callback_url,
            r.timezone,
            linked.get(r.id, {}),
            r.fz_enabled,
            r.fz_identification,
            r.creditor_name,
            r.contact_phone,
        )
        for r in conn.execute(query)
    }


def _load() -> Snapshot:
    with transaction() as conn:
        by_code = _entity_infos(conn)
        providers = conn.execute(select(Provider.id, Provider.code)).all()
    provider_codes = {p.id: p.code for p in providers}
    return Snapshot(
        loaded_at=time.monotonic(),
        by_code=by_code,
        entity_codes={info.id: info.code for info in by_code.values()},
        provider_codes=provider_codes,
    )


def snapshot() -> Snapshot:
    global _snapshot
    snap = _snapshot
    if snap is None or time.monotonic() - snap.loaded_at > TTL:
        with _lock:
            snap = _snapshot
            if snap is None or time.monotonic() - snap.loaded_at > TTL:
                snap = _snapshot = _load()
    return snap


MISS_RELOAD_AFTER = 0.5  # a miss reloads (it may have just been made elsewhere), at most this often


def _fresh_after_miss() -> Snapshot:
    snap = snapshot()
    if time.monotonic() - snap.loaded_at > MISS_RELOAD_AFTER:
        invalidate()
        snap = snapshot()
    return snap


def entity(code: str, *, fresh: bool = False) -> EntityInfo | None:
    """An entity by code. A miss (or `fresh`) asks the database: it may have just been made elsewhere."""
    info = None if fresh else snapshot().by_code.get(code)
    if info is None:
        with transaction() as conn:
            info = _entity_infos(conn, LegalEntity.__table__.c.code == code).get(code)
        if info is not None:
            snap = snapshot()
            snap.by_code[code] = info
            snap.entity_codes[info.id] = code
    return info


def entity_code(entity_id: int) -> str:
    code = snapshot().entity_codes.get(entity_id)
    return code if code is not None else _fresh_after_miss().entity_codes.get(entity_id, "")


def provider_code(provider_id: int | None) -> str | None:
    if provider_id is None:
        return None
    code = snapshot().provider_codes.get(provider_id)
    return code if code is not None else _fresh_after_miss().provider_codes.get(provider_id)


def invalidate() -> None:
    global _snapshot
    with _lock:
        _snapshot = None
