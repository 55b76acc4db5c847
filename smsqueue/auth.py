"""API keys: admin keys (everything) and entity keys (bound to one or more legal entities).

Keys are 256-bit random strings, so a plain SHA-256 of the key is a safe stored form (no salt or slow
hash needed: nobody can guess a key from its hash faster than by guessing the key). A lookup is cached in
the process for half a second only, so a revoked or expired key stops working on every process within
a second of its revocation; the last use is written at most once a minute per key.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from smsqueue.clock import now
from smsqueue.crypto import sha256_hex
from smsqueue.models import ApiKey, ApiKeyEntity, LegalEntity

KEY_PREFIX = "sq_"
ADMIN = "admin"
ENTITY = "entity"
CACHE_SECONDS = 0.5  # how long a process trusts what it read of a key
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is this precise: a write per key per minute


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    role: str
    entity_ids: frozenset[int]
    name: str | None = None
    rate_limit_per_second: float | None = None
    expires_at: datetime | None = None

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
    return create_key_row(session, role, entity_codes, name)[1]


def create_key_row(
    session: Session,
    role: str,
    entity_codes: Iterable[str] = (),
    name: str | None = None,
    expires_at: datetime | None = None,
    rate_limit_per_second: float | None = None,
) -> tuple[ApiKey, str]:
    """A new key's row, and the key in clear."""
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
    key_row = ApiKey(
        key_hash=sha256_hex(key),
        prefix=key[:10],
        role=role,
        name=name,
        expires_at=expires_at,
        rate_limit_per_second=rate_limit_per_second,
    )
    session.add(key_row)
    session.flush()
    if codes:
        session.execute(
            insert(ApiKeyEntity), [{"api_key_id": key_row.id, "legal_entity_id": ids[c]} for c in codes]
        )
    return key_row, key


_lock = threading.Lock()
_cache: dict[str, tuple[float, Principal | None]] = {}


def lookup(key: str) -> Principal | None:
    """The principal of a key, or None for an unknown, revoked or expired one (both cached briefly)."""
    digest = sha256_hex(key)
    hit = _cache.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        principal = hit[1]
    else:
        principal = _load(digest)
        with _lock:
            if len(_cache) > 10000:
                _cache.clear()
            _cache[digest] = (time.monotonic() + CACHE_SECONDS, principal)
    if principal is not None and principal.expires_at is not None and principal.expires_at <= now():
        return None
    return principal


def _load(digest: str) -> Principal | None:
    from smsqueue.db import transaction

    with transaction() as conn:
        row = conn.execute(
            select(
                ApiKey.id,
                ApiKey.role,
                ApiKey.name,
                ApiKey.rate_limit_per_second,
                ApiKey.expires_at,
                ApiKey.last_used_at,
            ).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        ids = conn.execute(
            select(ApiKeyEntity.legal_entity_id).where(ApiKeyEntity.api_key_id == row.id)
        ).scalars()
        at = now()
        if row.last_used_at is None or row.last_used_at < at - LAST_USED_EVERY:
            # Conditional, so that many processes seeing a stale time write it once between them.
            conn.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == row.id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at - LAST_USED_EVERY),
                )
                .values(last_used_at=at)
            )
        return Principal(
            row.id, row.role, frozenset(ids), row.name, row.rate_limit_per_second, row.expires_at
        )


def forget_cache() -> None:
    with _lock:
        _cache.clear()


# --- managing keys ------------------------------------------------------------------------------------


def list_keys(session: Session) -> list[tuple[ApiKey, list[str]]]:
    """Every key (revoked ones too, newest first) with the codes of its entities."""
    keys = list(session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))
    codes: dict[int, list[str]] = {}
    rows = session.execute(
        select(ApiKeyEntity.api_key_id, LegalEntity.code)
        .join(LegalEntity, LegalEntity.id == ApiKeyEntity.legal_entity_id)
        .order_by(LegalEntity.code)
    )
    for key_id, code in rows:
        codes.setdefault(key_id, []).append(code)
    return [(k, codes.get(k.id, [])) for k in keys]


def entity_codes_of(session: Session, key: ApiKey) -> list[str]:
    return list(
        session.scalars(
            select(LegalEntity.code)
            .join(ApiKeyEntity, ApiKeyEntity.legal_entity_id == LegalEntity.id)
            .where(ApiKeyEntity.api_key_id == key.id)
            .order_by(LegalEntity.code)
        )
    )


def key_for_update(session: Session, key_id: int) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.id == key_id).with_for_update()).first()


def revoke_key(session: Session, key: ApiKey) -> bool:
    """Revoke a key (from now on it is 401 everywhere). False when it was revoked already."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = now()
    session.flush()
    forget_cache()
    return True
