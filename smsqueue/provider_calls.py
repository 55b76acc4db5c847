"""Step 2 of a send: the provider calls, with no database connection held (see smsqueue.sending)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsqueue import metrics
from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.links import Claimed
from smsqueue.providers.base import OutgoingSMS, ProviderError, SendResult, TransientProviderError
from smsqueue.rules.provider_clients import callback_token_of, client_of

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallResult:
    """One provider call: the provider's answer, or the error that stopped it, and how long it took."""

    claimed: Claimed
    result: SendResult | None = None
    error: ProviderError | None = None
    seconds: float = 0.0


def outgoing(message: Any, sender: str | None, provider: Any, at: datetime) -> OutgoingSMS:
    ttl = None
    if message.valid_until is not None:
        ttl = max(60, int((message.valid_until - at).total_seconds()))
    report_url = None
    client = client_of(provider)
    if client.pushes_reports:
        token = callback_token_of(provider)
        report_url = f"{settings().public_url}/api/v1/providers/{provider.code}/dlr?token={token}"
    return OutgoingSMS(
        message_id=str(message.id),
        ref=message.pk,
        to=message.recipient,
        text=message.text,
        sender=sender,
        report_url=report_url,
        ttl_seconds=ttl,
    )


def call(claimed: Claimed, at: datetime, refused: set[int] | None = None) -> CallResult:
    """One provider call. `refused`: the providers that gave a provider-wide refusal to an earlier call
    of this batch; their remaining messages are not sent there (the provider is being paused) but fail
    over at once, as if refused too."""
    provider = claimed.link.provider
    started = time.monotonic()
    done = CallResult(claimed)
    if refused is not None and provider.id in refused:
        done.error = TransientProviderError(
            "the provider refused this batch's earlier message for the account",
            code="paused",
            provider_wide=True,
        )
        return done
    if claimed.start_by is not None and at > claimed.start_by:
        # The batch's earlier calls took so long that this one might still be going on when the
        # reconcile sweep takes the message for stalled: do not start it; it is retried.
        done.error = TransientProviderError("no time left to call the provider", code="not_started")
        return done
    try:
        client = client_of(provider)
        done.result = client.send(outgoing(claimed.message, claimed.sender, provider, at))
    except ProviderError as exc:
        done.error = exc
    except Exception as exc:  # a bug or an unexpected answer: treat as ambiguous, never resend blindly
        log.exception("provider %s client failed unexpectedly", provider.code)
        done.error = TransientProviderError(f"client error: {type(exc).__name__}", may_have_sent=True)
    done.seconds = time.monotonic() - started
    labels = {"provider": provider.code}
    metrics.observe("smsqueue_provider_send_seconds", labels, done.seconds, metrics.SEND_SECONDS_BUCKETS)
    if done.error is not None:
        code = done.error.code or done.error.default_code
        metrics.inc("smsqueue_provider_errors_total", {**labels, "code": code})
        if done.error.provider_wide and refused is not None:
            refused.add(provider.id)
    return done


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def call_all(claimed: Sequence[Claimed]) -> list[CallResult]:
    """Provider calls are network waits: a batch's calls overlap on a small thread pool."""
    global _pool, _pool_pid
    if len(claimed) == 1:
        return [call(claimed[0], now())]
    refused: set[int] = set()  # read and added to by the call threads (set operations are atomic)
    if _pool is None or _pool_pid != os.getpid():
        _pool, _pool_pid = (
            ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="send"),
            os.getpid(),
        )
    return list(_pool.map(lambda c: call(c, now(), refused), claimed))


# Calls are waits on the network: a claim's batch overlaps this many (the keep-alive pool holds as
# many, smsqueue.providers._pooled_session). 8 left a 500-message batch waiting on its calls.
CALL_THREADS = 32
