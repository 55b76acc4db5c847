"""Provider clients by kind. Each kind lives in its own module, imported when first used."""

from __future__ import annotations

from importlib import import_module

import requests

from smsqueue.providers.base import ProviderClient, ProviderConfig

# kind -> "module:Class"
KINDS: dict[str, str] = {
    "smsc": "smsqueue.providers.smsc:SmscClient",
    "smsru": "smsqueue.providers.smsru:SmsRuClient",
    "smsaero": "smsqueue.providers.smsaero:SmsAeroClient",
    "http_json": "smsqueue.providers.http_json:HttpJsonClient",
}


def client_class(kind: str) -> type[ProviderClient]:
    try:
        target = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}") from None
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def client_for(config: ProviderConfig, session: requests.Session | None = None) -> ProviderClient:
    return client_class(config.kind)(config, session)
