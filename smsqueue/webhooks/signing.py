"""Signatures: `X-Smsqueue-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` with the
entity's webhook secret, `X-Smsqueue-Timestamp` the unix time of the attempt (each attempt is signed
anew). For SMSQUEUE_WEBHOOK_SECRET_GRACE seconds after a rotation the replaced secret signs too, in
`X-Smsqueue-Signature-Previous: sha256=<hex>`, so a receiver can switch secrets without rejecting events.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from smsqueue.crypto import decrypt

SIGNATURE_HEADER = "X-Smsqueue-Signature"
PREVIOUS_SIGNATURE_HEADER = "X-Smsqueue-Signature-Previous"
TIMESTAMP_HEADER = "X-Smsqueue-Timestamp"
USER_AGENT = "smsqueue-webhooks/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<raw body>`, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, previous: str | None, body: bytes, timestamp: int) -> dict[str, str]:
    """Every header of one POST: the body's type, who sends it, and its signature(s)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"sha256={sign(secret, timestamp, body)}",
    }
    if previous is not None:
        headers[PREVIOUS_SIGNATURE_HEADER] = f"sha256={sign(previous, timestamp, body)}"
    return headers


def secrets_of(entity: Any, at: datetime) -> tuple[str, str | None]:
    """The entity's current webhook secret and, during the grace period after a rotation, the previous one."""
    previous = None
    until = entity.webhook_secret_previous_until
    if entity.webhook_secret_previous and until is not None and until > at:
        previous = decrypt(entity.webhook_secret_previous)
    return decrypt(entity.webhook_secret), previous
