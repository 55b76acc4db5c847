"""Provider rows to clients: settings merged with the decrypted secrets, one client per process and row
version (a PATCH of the provider makes a new one), each with its own keep-alive HTTP session."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from smsqueue.crypto import decrypt, decrypt_json
from smsqueue.providers import pooled_client
from smsqueue.providers.base import ProviderClient, ProviderConfig

_lock = threading.Lock()
_clients: dict[tuple[int, Any], ProviderClient] = {}


def config_of(row: Any) -> ProviderConfig:
    """A ProviderConfig from a `providers` row (ORM object or Core row)."""
    settings = {**(row.settings or {}), **decrypt_json(row.secrets)}
    return ProviderConfig(code=row.code, kind=row.kind, settings=settings, timeout=float(row.timeout_seconds))


def client_of(row: Any) -> ProviderClient:
    """The process's client of a `providers` row, made anew when the row has changed since."""
    key = (row.id, row.updated_at)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                for old in [k for k in _clients if k[0] == row.id]:
                    _clients.pop(old).session.close()
                client = pooled_client(config_of(row))
                _clients[key] = client
    return client


def callback_token_of(row: Any) -> str:
    """The token in clear that the provider's delivery-report URL must carry. Decrypted once per stored
    ciphertext (a Fernet decryption on every send was 3% of a worker's CPU at low rates)."""
    return _callback_token(row.callback_token)


@lru_cache(maxsize=1024)
def _callback_token(ciphertext: str) -> str:
    return decrypt(ciphertext)  # a new token is a new ciphertext: nothing to invalidate
