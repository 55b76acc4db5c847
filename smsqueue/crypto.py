"""Encryption of secrets at rest (provider passwords and tokens, webhook secrets, callback tokens).

SMSQUEUE_SECRET_KEY may list several keys, comma-separated: the first encrypts, all decrypt, so a key
can be rotated without re-encrypting every row first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, MultiFernet

from smsqueue.config import settings


@cache
def _fernet_for(secret_key: str) -> MultiFernet:
    keys = [k.strip() for k in secret_key.split(",") if k.strip()]
    # Any string is accepted as a key: it is stretched to Fernet's 32 bytes by SHA-256.
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys])


def _fernet() -> MultiFernet:
    return _fernet_for(settings().secret_key)


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def encrypt_json(value: dict[str, Any]) -> str:
    return encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True))


def decrypt_json(token: str | None) -> dict[str, Any]:
    return json.loads(decrypt(token)) if token else {}


def new_token(prefix: str = "", nbytes: int = 24) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
