"""A provider's settings as stored, shown and checked. They are stored split: the plain ones in
`providers.settings`, the secret ones (the client's `secret_keys`) as encrypted JSON in
`providers.secrets`; every answer shows a secret that is set as the mask; an edit that leaves a secret
out, or sends the mask back, keeps it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smsqueue.crypto import decrypt_json
from smsqueue.errors import FieldCode
from smsqueue.models import Provider
from smsqueue.providers import client_class

# What every answer shows in place of a secret that is set (provider settings and callback tokens,
# entities' webhook secrets), and what a client may send back to keep it.
MASKED = "***"
# Settings every kind takes besides its client's own: the sender used when neither the message nor the
# entity's link to the provider names one (read by sending.claim).
COMMON_SETTINGS = frozenset({"sender"})

# (field, code, message) of one invalid setting, as the clients' `validate_settings` give them
SettingProblem = tuple[str, str, str]


def split_settings(kind: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain settings, secret settings) of a provider kind."""
    secret_keys = client_class(kind).secret_keys
    plain = {k: v for k, v in settings.items() if k not in secret_keys}
    secret = {k: v for k, v in settings.items() if k in secret_keys}
    return plain, secret


def all_settings(provider: Provider) -> dict[str, Any]:
    """Plain and secret settings together, secrets in clear: for validating an edit, never for output."""
    return {**(provider.settings or {}), **decrypt_json(provider.secrets)}


def masked_settings(provider: Provider) -> dict[str, Any]:
    """The settings as every answer shows them: secrets that are set as "***", the others as stored."""
    secret_names = sorted(decrypt_json(provider.secrets)) if provider.secrets else []
    return {**(provider.settings or {}), **dict.fromkeys(secret_names, MASKED)}


def settings_problems(kind: str, settings: Mapping[str, Any]) -> list[SettingProblem]:
    """Every invalid setting, one problem per setting: that every value is a string (every documented
    setting is one) and not the mask, then the client's own checks."""
    cls = client_class(kind)
    problems: list[SettingProblem] = []
    for key, value in settings.items():
        if value is not None and not isinstance(value, str):
            problems.append((f"settings.{key}", FieldCode.INVALID_TYPE, f"{key} must be a string"))
        elif key in cls.secret_keys and value == MASKED:
            problems.append(
                (f"settings.{key}", FieldCode.INVALID_VALUE, f'"{MASKED}" is the mask, not a {key}')
            )
    own = {k: v for k, v in settings.items() if k not in COMMON_SETTINGS}
    problems += cls.validate_settings(own)
    first: dict[str, SettingProblem] = {}
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
