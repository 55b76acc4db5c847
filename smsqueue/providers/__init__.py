"""Provider clients by kind. Each kind lives in its own module, imported when first used."""

from __future__ import annotations

from importlib import import_module

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from smsqueue.providers.base import ProviderClient, ProviderConfig

# kind -> "module:Class"
KINDS: dict[str, str] = {
    "smsc": "smsqueue.providers.smsc:SmscClient",
    "smsru": "smsqueue.providers.smsru:SmsRuClient",
    "smsaero": "smsqueue.providers.smsaero:SmsAeroClient",
    "http_json": "smsqueue.providers.http_json:HttpJsonClient",
    "smstraffic": "smsqueue.providers.smstraffic:SmsTrafficClient",
    "iqsms": "smsqueue.providers.iqsms:IqsmsClient",
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


def pooled_client(config: ProviderConfig) -> ProviderClient:
    """A client with its own keep-alive HTTP session, for a process to keep and reuse."""
    client = client_for(config, _pooled_session())
    _settle_proxies(client)
    return client


def _pooled_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _settle_proxies(client: ProviderClient) -> None:
    """Read the proxy environment (HTTP(S)_PROXY, NO_PROXY) once for the provider's address, instead
    of on every request: requests' per-request environment lookup (netrc file included) costs a third
    of a provider call's CPU."""
    endpoint = str(client.settings.get("url") or client.base_url())
    client.session.proxies = get_environ_proxies(endpoint) if endpoint else {}
    client.session.trust_env = False
