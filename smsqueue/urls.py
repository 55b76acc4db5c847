"""Callback URL checks: a webhook must not be aimed at our own network (loopback, private, link-local)
unless SMSQUEUE_ALLOW_PRIVATE_CALLBACKS says so (development and tests)."""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urlsplit

from smsqueue.config import settings

MAX_URL_LENGTH = 2048
_DNS_TTL = 60.0
_dns_cache: dict[str, tuple[float, list[str] | None]] = {}


class UrlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Not global covers private, loopback, link-local, shared (CGNAT), reserved and unspecified ranges.
    return not ip.is_global or ip.is_multicast


def resolve(host: str) -> list[str] | None:
    """The addresses a host name resolves to (cached a minute), or None when it does not resolve."""
    hit = _dns_cache.get(host)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    try:
        addresses = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        addresses = None
    _dns_cache[host] = (time.monotonic() + _DNS_TTL, addresses)
    return addresses


def check_callback_url(url: str, *, resolve_names: bool = True) -> str:
    """The URL if it may receive webhooks; UrlError (code invalid_url or callback_url_not_allowed) if not.

    A name that does not resolve now is let through: it is checked again when a webhook is sent."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlError("too_long", f"at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UrlError("invalid_url", "not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise UrlError("invalid_url", "must be an http or https URL with a host")
    if parts.username or parts.password:
        raise UrlError("invalid_url", "must not carry credentials")
    if settings().allow_private_callbacks:
        return url
    try:
        addresses: list[str] | None = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            addresses = ["127.0.0.1"]
        else:
            addresses = resolve(host) if resolve_names else None
    if addresses and any(_is_internal(a) for a in addresses):
        raise UrlError("callback_url_not_allowed", "resolves to a loopback, private or link-local address")
    return url
