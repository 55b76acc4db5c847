"""Services that read, change and remove providers (creation is `rules.admin.create_provider`). The admin
API goes through these, so secrets are always encrypted, always masked on the way out, and kept when an
edit leaves them out.

A provider's settings are stored split: the plain ones in `providers.settings`, the secret ones (the
client's `secret_keys`) as encrypted JSON in `providers.secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from smsqueue import directory
from smsqueue.crypto import decrypt_json, encrypt, encrypt_json
from smsqueue.models import EntityProvider, Message, Provider
from smsqueue.providers import client_class
from smsqueue.rules.admin import split_settings

MASKED = "***"
# Settings every kind takes besides its client's own: the sender used when neither the message nor the
# entity's link to the provider names one (read by sending.claim).
COMMON_SETTINGS = frozenset({"sender"})


class ProviderInUse(Exception):
    """The provider is referred to by messages or entity links: it cannot be deleted (disable it)."""

    def __init__(self, messages: bool, links: bool) -> None:
        what = [w for w, yes in (("messages", messages), ("legal entities", links)) if yes]
        super().__init__(f"{' and '.join(what)} refer to it")
        self.messages = messages
        self.links = links


def all_settings(provider: Provider) -> dict[str, Any]:
    """Plain and secret settings together, secrets in clear: for validating an edit, never for output."""
    return {**(provider.settings or {}), **decrypt_json(provider.secrets)}


def masked_settings(provider: Provider) -> dict[str, Any]:
    """The settings as every answer shows them: secrets that are set as "***", the others as stored."""
    secret_names = sorted(decrypt_json(provider.secrets)) if provider.secrets else []
    return {**(provider.settings or {}), **dict.fromkeys(secret_names, MASKED)}


def settings_problems(kind: str, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(field, code, message) for every invalid setting, one per setting: that every value is a string
    (every documented setting is one) and not the mask, then the client's own checks."""
    cls = client_class(kind)
    problems: list[tuple[str, str, str]] = []
    for key, value in settings.items():
        if value is not None and not isinstance(value, str):
            problems.append((f"settings.{key}", "invalid_type", f"{key} must be a string"))
        elif key in cls.secret_keys and value == MASKED:
            problems.append((f"settings.{key}", "invalid_value", f'"{MASKED}" is the mask, not a {key}'))
    own = {k: v for k, v in settings.items() if k not in COMMON_SETTINGS}
    problems += cls.validate_settings(own)
    first: dict[str, tuple[str, str, str]] = {}
    for problem in problems:
        first.setdefault(problem[0], problem)
    return list(first.values())


def merge_settings(provider: Provider, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings after a PATCH's `settings` (a JSON merge patch): a key given replaces its value, a key
    given as null is removed, a key left out is kept; a secret given as "***" (sent back as read) is kept."""
    secret_keys = client_class(provider.kind).secret_keys
    merged = all_settings(provider)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif key in secret_keys and value == MASKED:
            continue
        else:
            merged[key] = value
    return merged


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
    """Change a provider. `settings` is the whole new settings dict (see merge_settings), split and its
    secrets encrypted here; `callback_token` a new token in clear; `columns`: name, enabled,
    rate_limit_per_second, timeout_seconds. Every process's client of this provider is rebuilt (the
    client cache is keyed by the row's updated_at)."""
    allowed = {"name", "enabled", "rate_limit_per_second", "timeout_seconds"}
    unknown = set(columns) - allowed
    if unknown:
        raise ValueError(f"not changed by update_provider: {sorted(unknown)}")
    for name, value in columns.items():
        setattr(provider, name, value)
    if settings is not None:
        plain, secret = split_settings(provider.kind, settings)
        provider.settings = plain
        provider.secrets = encrypt_json(secret) if secret else None
    if callback_token is not None:
        provider.callback_token = encrypt(callback_token)
    session.flush()
    directory.invalidate()
    return provider


def disable_provider(session: Session, provider: Provider) -> Provider:
    """No message is sent through it from now on; its messages in flight and their reports still land."""
    return update_provider(session, provider, enabled=False)


def in_use(session: Session, provider: Provider) -> tuple[bool, bool]:
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
    messages, links = in_use(session, provider)
    if messages or links:
        raise ProviderInUse(messages, links)
    session.delete(provider)
    session.flush()
    directory.invalidate()
