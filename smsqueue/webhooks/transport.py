"""One POST to a receiver: the address check at send time, the timeouts, what the answer says.

A callback URL that resolves to a loopback, private or link-local address is refused at send time too
(unless SMSQUEUE_ALLOW_PRIVATE_CALLBACKS), as its name may resolve elsewhere than when it was accepted.
Redirects are not followed; a POST is cut at SMSQUEUE_WEBHOOK_TIMEOUT, and at most a small part of the
answer's body is read. A receiver's cookies are not sent back to it (nor to another receiver).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import requests

from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.urls import UrlError, check_callback_url

CONNECT_TIMEOUT = 5.0
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer body that is read (and dropped)
MAX_RETRY_AFTER = 24 * 3600.0
INVALID_ORIGIN = "invalid:"
REFUSED = "callback_url refused"  # how the error of an event whose URL may not receive webhooks starts


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt to post an event came to: the receiver's answer, or why there was none."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int | None = None
    counts_for_receiver: bool = True  # whether it says anything about the receiver's health

    @property
    def kind(self) -> Literal["delivered", "retry", "give_up"]:
        code = self.status_code
        if code is None:
            return "retry"  # no answer: network error, timeout, or our own trouble
        if 200 <= code < 300:
            return "delivered"
        if code == 429 or code >= 500:
            return "retry"
        return "give_up"

    @property
    def refused(self) -> bool:
        """Not posted because the URL may not receive webhooks: retrying would not change that."""
        return self.error is not None and self.error.startswith(REFUSED)


def origin_of(url: str | None) -> str:
    """scheme://host:port of a URL: the unit of receiver health and concurrency."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname, parts.port
    except ValueError:
        return INVALID_ORIGIN
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return INVALID_ORIGIN
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(max(0.0, (when - now()).total_seconds()), MAX_RETRY_AFTER)


def new_session() -> requests.Session:
    session = requests.Session()
    # A receiver's cookies are not sent back to it (nor to another receiver): each POST stands alone.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(1, settings().webhook_per_receiver)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(session: requests.Session, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
    """Check the URL again (its name may resolve elsewhere now), then POST."""
    try:
        check_callback_url(url)
    except UrlError as exc:
        return AttemptResult(status_code=None, error=f"{REFUSED}: {exc}", counts_for_receiver=False)
    return post(session, url, body, headers, settings().webhook_timeout)


def post(
    session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> AttemptResult:
    """POST once; the answer's status (and Retry-After), or why none came. Reads at most a small part of
    the answer's body, and no longer than the timeout."""
    started = time.monotonic()
    try:
        with session.post(
            url,
            data=body,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
            stream=True,
            allow_redirects=False,
        ) as answer:
            deadline = started + timeout
            read = 0
            for chunk in answer.iter_content(8192):
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES or time.monotonic() > deadline:
                    break
            return AttemptResult(
                status_code=answer.status_code,
                retry_after=retry_after_seconds(answer.headers.get("Retry-After"))
                if answer.status_code in (429, 503)
                else None,
                duration_ms=_ms(started),
            )
    except requests.RequestException as exc:
        return AttemptResult(error=_network_error(exc, timeout), duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _network_error(exc: requests.RequestException, timeout: float) -> str:
    """A short description of why no answer came. Never the URL: its query may hold the caller's token."""
    text = repr(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"timeout: no connection within {CONNECT_TIMEOUT:g}s"
    if isinstance(exc, requests.Timeout):
        return f"timeout: no answer within {timeout:g}s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return "connection error: the host name does not resolve"
    if "Connection refused" in text:
        return "connection error: connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
        return "connection error: closed without an answer"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return f"request error: {type(exc).__name__}"
