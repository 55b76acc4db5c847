"""When a failed event is tried again, and when it is given up.

A network error, a timeout, a 5xx or a 429 is retried after min(base * 2^(n-1), max) seconds, times a
random factor in [0.5, 1] (jitter), or after the receiver's Retry-After when that is longer; an event is
given up only when an attempt fails SMSQUEUE_WEBHOOK_RETRY_FOR seconds (default 24 h) or more after its
status change. A blocked receiver (circuit open) waits exponentially longer with each failure past the
threshold.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from smsqueue.config import Settings
from smsqueue.webhooks.transport import AttemptResult


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.5, 1.0)


def retry_delay(attempt: int, s: Settings) -> float:
    """Seconds before retrying an event whose attempt number `attempt` (1 first) failed."""
    return _jitter(min(s.webhook_retry_max, s.webhook_retry_base * 2 ** min(attempt - 1, 40)))


def breaker_delay(failures: int, s: Settings) -> float:
    """Seconds a receiver is left alone after `failures` consecutive failures (at least the threshold)."""
    over = max(0, failures - s.webhook_breaker_threshold)
    return _jitter(min(s.webhook_retry_max, s.webhook_retry_base * 2 ** min(over, 40)))


def deadline_passed(event_at: datetime, at: datetime, s: Settings) -> bool:
    """Whether an event whose status changed at `event_at` is past its retry period."""
    return at >= event_at + timedelta(seconds=s.webhook_retry_for)


def next_try_at(
    attempt: int, result: AttemptResult, at: datetime, blocked_until: datetime | None, s: Settings
) -> datetime:
    """When to try again an event whose attempt `attempt` failed at `at` with `result`: its backoff, or
    the receiver's Retry-After if longer, and not before its receiver's block ends."""
    delay = retry_delay(attempt, s)
    if result.retry_after is not None:
        delay = max(delay, result.retry_after)
    next_at = at + timedelta(seconds=delay)
    if blocked_until is not None:
        next_at = max(next_at, blocked_until)
    return next_at
