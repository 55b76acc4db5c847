"""API keys: admin keys (everything) and entity keys (bound to one or more legal entities).

Keys are 256-bit random strings, so a plain SHA-256 of the key is a safe stored form (no salt or slow
hash needed: nobody can guess a key from its hash faster than by guessing the key). Lookups are cached
in the process for a few seconds, so a request costs no key query.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from smsqueue.crypto import sha256_hex
from smsqueue.models import ApiKey, ApiKeyEntity, LegalEntity

KEY_PREFIX = "sq_"
ADMIN = "admin"
ENTITY = "entity"
CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    role: str
    entity_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def may_use(self, entity_id: int) -> bool:
        return self.is_admin or entity_id in self.entity_ids


class UnknownEntity(LookupError):
    pass


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(session: Session, role: str, entity_codes: Iterable[str] = (), name: str | None = None) -> str:
    """Store a new key and return it in clear: the only time it is ever seen."""
    codes = list(dict.fromkeys(entity_codes))
    if role not in (ADMIN, ENTITY):
        raise ValueError(f"unknown role {role!r}")
    if role == ENTITY and not codes:
        raise ValueError("an entity key needs at least one entity")
    if role == ADMIN and codes:
        raise ValueError("an admin key is bound to no entity")
    ids = dict(
        session.execute(select(LegalEntity.code, LegalEntity.id).where(LegalEntity.code.in_(codes))).all()
    )
    missing = [c for c in codes if c not in ids]
    if missing:
        raise UnknownEntity(", ".join(missing))
    key = generate_key()
    key_row = ApiKey(key_hash=sha256_hex(key), prefix=key[:10], role=role, name=name)
    session.add(key_row)
    session.flush()
    if codes:
        session.execute(
            insert(ApiKeyEntity), [{"api_key_id": key_row.id, "legal_entity_id": ids[c]} for c in codes]
        )
    return key


_lock = threading.Lock()
_cache: dict[str, tuple[float, Principal | None]] = {}


def lookup(key: str) -> Principal | None:
    """The principal of a key, or None for an unknown or revoked one (both cached briefly)."""
    digest = sha256_hex(key)
    hit = _cache.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    principal = _load(digest)
    with _lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[digest] = (time.monotonic() + CACHE_SECONDS, principal)
    return principal


def _load(digest: str) -> Principal | None:
    from smsqueue.db import transaction

    with transaction() as conn:
        row = conn.execute(
            select(ApiKey.id, ApiKey.role).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        ids = conn.execute(
            select(ApiKeyEntity.legal_entity_id).where(ApiKeyEntity.api_key_id == row.id)
        ).scalars()
        return Principal(row.id, row.role, frozenset(ids))


def forget_cache() -> None:
    with _lock:
        _cache.clear()
