"""Global rate limits: token buckets in Redis shared by every process, per provider (workers) and per
API key (web processes).

Celery's own `rate_limit` is per worker, so it cannot hold a provider's limit across workers. A message
over the limit is not rejected: it waits for its token (due, and rung by the sweep, when it is there).
A request over its key's limit is refused (429 with Retry-After). Without Redis (the embedded setup),
the buckets live in the process: each web process then counts a key's requests on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from smsqueue import metrics
from smsqueue.config import settings

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: rate (tokens/s), capacity, tokens wanted. Returns {granted, wait seconds}.
# The clock is Redis' own, so workers on several machines agree.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = cap; ts = now end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 60)
local wait = 0
if granted < want then wait = (1 - tokens) / rate end
return {granted, tostring(wait)}
"""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    wait: float  # seconds until the next token, when fewer were granted than asked


def capacity_for(rate: float) -> float:
    """The burst a bucket allows: a tenth of a second's worth, at least one token. Small, so that any
    one-second window sees at most about `rate` sends."""
    return max(1.0, rate / 10.0)


class RedisBuckets:
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(_LUA)

    def take(self, key: str, rate: float, want: int, capacity: float | None = None) -> Grant:
        cap = capacity_for(rate) if capacity is None else capacity
        granted, wait = self.script(keys=[f"{self.prefix}rate:{key}"], args=[rate, cap, want])
        return Grant(int(granted), float(wait))


class LocalBuckets:
    """The same bucket in process memory, for the embedded setup without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, want: int, capacity: float | None = None) -> Grant:
        cap = capacity_for(rate) if capacity is None else capacity
        with self.lock:
            now = time.monotonic()
            tokens, ts = self.state.get(key, (cap, now))
            tokens = min(cap, tokens + max(0.0, now - ts) * rate)
            granted = min(want, int(tokens))
            tokens -= granted
            self.state[key] = (tokens, now)
        return Grant(granted, 0.0 if granted == want else (1 - tokens) / rate)


@cache
def _buckets_for(redis_url: str | None, prefix: str) -> RedisBuckets | LocalBuckets:
    if not redis_url:
        return LocalBuckets()
    import redis

    return RedisBuckets(redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2), prefix)


def buckets() -> RedisBuckets | LocalBuckets:
    s = settings()
    return _buckets_for(s.effective_redis_url, s.redis_prefix)


def take(provider_code: str, rate: float | None, want: int) -> Grant:
    """Take up to `want` tokens from a provider's bucket; everything when it has no limit."""
    if not rate or rate <= 0 or want <= 0:
        return Grant(want, 0.0)
    return buckets().take(provider_code, float(rate), want)


def take_request(key_id: int, rate: float | None) -> Grant:
    """One request's token from an API key's bucket (a second's worth of burst). When Redis cannot be
    asked the request passes: a limiter outage must not stop the API (it is logged and counted)."""
    if not rate or rate <= 0:
        return Grant(1, 0.0)
    try:
        grant = buckets().take(f"key:{key_id}", float(rate), 1, capacity=max(1.0, float(rate)))
    except Exception as exc:  # redis-py's errors; the limiter fails open
        log.warning("rate limiter unavailable (%s); request let through", type(exc).__name__)
        metrics.inc("smsqueue_rate_limiter_errors_total", {})
        return Grant(1, 0.0)
    if not grant.granted:
        metrics.inc("smsqueue_rate_limited_total", {"key": str(key_id)})
    return grant
