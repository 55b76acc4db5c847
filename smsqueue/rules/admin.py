"""Services that make, change and remove providers, legal entities and their links. The admin API, the
CLI and the tests all go through these, so secrets are always encrypted, the caches always told and codes
always checked the same way. Every process's client of a changed provider is rebuilt (the client cache
of `rules.provider_clients` is keyed by the row's updated_at). Each change is recorded in the audit log
(`rules.audit`) in the same transaction, its secrets masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from smsqueue import entity_cache
from smsqueue.crypto import decrypt, decrypt_json, encrypt, encrypt_json, new_token
from smsqueue.models import EntityProvider, LegalEntity, Message, Provider
from smsqueue.rules import audit
from smsqueue.rules.provider_settings import split_settings

PROVIDER_FIELDS = ("kind", "name", "enabled", "rate_limit_per_second", "timeout_seconds")
# Column -> the field's name in the API (and so in the audit log): fz_per_day is "fz.per_day".
_ENTITY_FIELD_NAMES = {
    "send_window_from": "send_window.from",
    "send_window_to": "send_window.to",
    "fz_weekday_from": "fz.weekday_hours.from",
    "fz_weekday_to": "fz.weekday_hours.to",
    "fz_weekend_from": "fz.weekend_hours.from",
    "fz_weekend_to": "fz.weekend_hours.to",
}
_ENTITY_SKIPPED = {"id", "code", "created_at", "updated_at", "webhook_secret_previous_until"}
_ENTITY_SECRETS = {"webhook_secret", "webhook_secret_previous"}


def _provider_state(provider: Provider) -> dict[str, Any]:
    """What the audit log compares of a provider: its fields, plain settings, and its secrets (decrypted
    here only to tell which changed, their ciphertexts always differ; `audit.diff` masks them)."""
    state: dict[str, Any] = {name: getattr(provider, name) for name in PROVIDER_FIELDS}
    state.update({f"settings.{k}": v for k, v in (provider.settings or {}).items()})
    secrets = decrypt_json(provider.secrets) if provider.secrets else {}
    state.update({f"settings.{k}": v for k, v in secrets.items()})
    state["callback_token"] = decrypt(provider.callback_token)
    return state


def _provider_secrets(provider: Provider) -> set[str]:
    secrets = decrypt_json(provider.secrets) if provider.secrets else {}
    return {f"settings.{k}" for k in secrets} | {"callback_token"}


def entity_state(entity: LegalEntity) -> dict[str, Any]:
    """An entity's columns under their API names, for the audit log."""
    state: dict[str, Any] = {}
    for column in LegalEntity.__table__.columns:
        if column.name in _ENTITY_SKIPPED:
            continue
        name = _ENTITY_FIELD_NAMES.get(column.name) or (
            "fz." + column.name[3:] if column.name.startswith("fz_") else column.name
        )
        state[name] = getattr(entity, column.name)
    return state


def record_entity_change(session: Session, entity: LegalEntity, before: dict[str, Any], action: str) -> None:
    audit.record(session, action, entity.code, audit.diff(before, entity_state(entity), _ENTITY_SECRETS))


class ProviderInUse(Exception):
    """The provider is referred to by messages or entity links: it cannot be deleted (disable it)."""

    def __init__(self, messages: bool, links: bool) -> None:
        what = [w for w, yes in (("messages", messages), ("legal entities", links)) if yes]
        super().__init__(f"{' and '.join(what)} refer to it")
        self.messages = messages
        self.links = links


# --- providers ----------------------------------------------------------------------------------------


def create_provider(
    session: Session,
    *,
    code: str,
    kind: str,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    enabled: bool = True,
    rate_limit_per_second: float | None = None,
    timeout_seconds: float = 10.0,
    callback_token: str | None = None,
) -> tuple[Provider, str]:
    """A new provider, and its callback token in clear (shown once)."""
    plain, secret = split_settings(kind, settings or {})
    token = callback_token or new_token()
    provider = Provider(
        code=code,
        kind=kind,
        name=name or code,
        enabled=enabled,
        settings=plain,
        secrets=encrypt_json(secret) if secret else None,
        rate_limit_per_second=rate_limit_per_second,
        timeout_seconds=timeout_seconds,
        callback_token=encrypt(token),
    )
    session.add(provider)
    session.flush()
    audit.record(
        session,
        "provider.create",
        code,
        audit.diff({}, _provider_state(provider), _provider_secrets(provider)),
    )
    entity_cache.invalidate()
    return provider, token


def provider_by_code(session: Session, code: str) -> Provider | None:
    return session.scalars(select(Provider).where(Provider.code == code)).first()


def provider_for_update(session: Session, code: str) -> Provider | None:
    """A provider by code, its row locked until the transaction ends (an edit or delete racing another
    is applied after it, not over it)."""
    return session.scalars(select(Provider).where(Provider.code == code).with_for_update()).first()


def list_providers(session: Session) -> list[Provider]:
    return list(session.scalars(select(Provider).order_by(Provider.code)))


def update_provider(
    session: Session,
    provider: Provider,
    *,
    settings: Mapping[str, Any] | None = None,
    callback_token: str | None = None,
    **columns: Any,
) -> Provider:
    """Change a provider. `settings` is the whole new settings dict (see
    `provider_settings.merge_settings`), split and its secrets encrypted here; `callback_token` a new
    token in clear; `columns`: name, enabled, rate_limit_per_second, timeout_seconds."""
    allowed = {"name", "enabled", "rate_limit_per_second", "timeout_seconds"}
    unknown = set(columns) - allowed
    if unknown:
        raise ValueError(f"not changed by update_provider: {sorted(unknown)}")
    before, before_secrets = _provider_state(provider), _provider_secrets(provider)
    for name, value in columns.items():
        setattr(provider, name, value)
    if settings is not None:
        plain, secret = split_settings(provider.kind, settings)
        provider.settings = plain
        provider.secrets = encrypt_json(secret) if secret else None
    if callback_token is not None:
        provider.callback_token = encrypt(callback_token)
    session.flush()
    secret_names = before_secrets | _provider_secrets(provider)
    audit.record(
        session, "provider.update", provider.code, audit.diff(before, _provider_state(provider), secret_names)
    )
    entity_cache.invalidate()
    return provider


def provider_in_use(session: Session, provider: Provider) -> tuple[bool, bool]:
    """(messages refer to it, entity links refer to it)."""
    messages = session.scalar(
        select(
            exists().where(
                or_(Message.provider_id == provider.id, Message.requested_provider_id == provider.id)
            )
        )
    )
    links = session.scalar(select(exists().where(EntityProvider.provider_id == provider.id)))
    return bool(messages), bool(links)


def delete_provider(session: Session, provider: Provider) -> None:
    """Delete a provider nothing refers to; ProviderInUse otherwise. (The foreign keys refuse it too, for
    a message stored between the check and the delete.)"""
    messages, links = provider_in_use(session, provider)
    if messages or links:
        raise ProviderInUse(messages, links)
    audit.record(session, "provider.delete", provider.code, {})
    session.delete(provider)
    session.flush()
    entity_cache.invalidate()


# --- legal entities and their links -------------------------------------------------------------------


def create_entity(
    session: Session, *, code: str, name: str | None = None, **fields: Any
) -> tuple[LegalEntity, str]:
    """A new legal entity (columns of LegalEntity as keywords), and its webhook secret in clear."""
    secret = new_token("whsec_")
    entity = LegalEntity(code=code, name=name or code, webhook_secret=encrypt(secret), **fields)
    session.add(entity)
    session.flush()
    record_entity_change(session, entity, {}, "legal_entity.create")
    entity_cache.invalidate()
    return entity, secret


def link_provider(
    session: Session,
    entity: LegalEntity,
    provider: Provider,
    *,
    priority: int = 1,
    sender: str | None = None,
    enabled: bool = True,
) -> tuple[EntityProvider, bool]:
    """Add or update a provider of an entity. Returns the link and whether it is new."""
    link = session.get(EntityProvider, (entity.id, provider.id))
    created = link is None
    before = {} if link is None else _link_state(link)
    if link is None:
        link = EntityProvider(legal_entity_id=entity.id, provider_id=provider.id)
        session.add(link)
    link.priority = priority
    link.sender = sender
    link.enabled = enabled
    session.flush()
    action = "legal_entity_provider.create" if created else "legal_entity_provider.update"
    audit.record(session, action, f"{entity.code}/{provider.code}", audit.diff(before, _link_state(link)))
    entity_cache.invalidate()
    return link, created


def entity_by_code(session: Session, code: str) -> LegalEntity | None:
    return session.scalars(select(LegalEntity).where(LegalEntity.code == code)).first()


def entity_for_update(session: Session, code: str) -> LegalEntity | None:
    """An entity by code, its row locked until the transaction ends (read-modify-write without lost
    updates between two concurrent edits)."""
    return session.scalars(select(LegalEntity).where(LegalEntity.code == code).with_for_update()).first()


def update_entity(session: Session, entity: LegalEntity, **columns: Any) -> LegalEntity:
    """Set columns of an entity (`code` and `webhook_secret` are not changed here)."""
    forbidden = {"code", "webhook_secret", "id"} & set(columns)
    if forbidden:
        raise ValueError(f"not changed by update_entity: {sorted(forbidden)}")
    before = entity_state(entity)
    for name, value in columns.items():
        if not hasattr(LegalEntity, name):
            raise ValueError(f"legal entities have no column {name!r}")
        setattr(entity, name, value)
    session.flush()
    record_entity_change(session, entity, before, "legal_entity.update")
    entity_cache.invalidate()
    return entity


def deactivate_entity(session: Session, entity: LegalEntity) -> LegalEntity:
    """Deactivate an entity: it stays (its messages refer to it), and the rules reject what it sends."""
    return update_entity(session, entity, active=False)


def links_of(session: Session, entity: LegalEntity) -> list[tuple[EntityProvider, Provider]]:
    """An entity's provider links, in the order the sender tries them (priority, then age)."""
    rows = session.execute(
        select(EntityProvider, Provider)
        .join(Provider, Provider.id == EntityProvider.provider_id)
        .where(EntityProvider.legal_entity_id == entity.id)
        .order_by(EntityProvider.priority, Provider.id)
    ).all()
    return [(link, provider) for link, provider in rows]


def next_priority(session: Session, entity: LegalEntity) -> int:
    """The priority after the entity's last provider (1 for its first)."""
    priorities = [link.priority for link, _ in links_of(session, entity)]
    return max(priorities, default=0) + 1


def unlink_provider(session: Session, entity: LegalEntity, provider: Provider) -> bool:
    """Remove a provider from an entity. False when it was not linked."""
    link = session.get(EntityProvider, (entity.id, provider.id))
    if link is None:
        return False
    audit.record(session, "legal_entity_provider.delete", f"{entity.code}/{provider.code}", {})
    session.delete(link)
    session.flush()
    entity_cache.invalidate()
    return True


def _link_state(link: EntityProvider) -> dict[str, Any]:
    return {"priority": link.priority, "sender": link.sender, "enabled": link.enabled}
