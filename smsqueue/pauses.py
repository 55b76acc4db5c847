"""Provider pauses: a provider whose account cannot send is paused for every message, then probed.

A provider-wide refusal (a client's `provider_wide` error: bad credentials, no funds, our address
blocked) would be every message's answer, and hammering the provider can make it block us harder. So:

1. `pause` sets `providers.paused_until` (SMSQUEUE_PROVIDER_PAUSE_SECONDS ahead) and `pause_reason`;
   the claim (smsqueue.links.choose_link) passes a paused provider by: its messages go to the entity's
   next provider at once, without counting a retry, and those with no other provider wait, queued,
   until the pause ends.
2. When the pause is over, the first claim that wants the provider takes the probe (`claim_probe`): one
   conditional UPDATE moves `paused_until` a call's length ahead, so no other claim, in this process
   or another, can take a second one; that one message is sent.
3. The probe's answer decides: sent, or refused for a reason of its own, lifts the pause (`resume`);
   a provider-wide refusal pauses the provider again. A probe that never answers (a killed worker)
   leaves the short hold to run out, and the next claim probes again.

Every pause is counted (`smsqueue_provider_pauses_total`) and logged.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, update

from smsqueue import metrics
from smsqueue.config import settings
from smsqueue.models import Provider

log = logging.getLogger(__name__)
p = Provider.__table__.c
providers_t = Provider.__table__

MAX_REASON = 64


def pause_length() -> timedelta:
    return timedelta(seconds=settings().provider_pause_seconds)


def pause(conn: Connection, provider: Any, reason: str, at: datetime, *, probe: bool = False) -> bool:
    """Pause the provider from `at` for the pause's length. True when this is a new pause (the provider
    was not paused, or this is its probe refused again): then it is counted and logged; the refusals of
    a batch of messages that were already on their way pause it once."""
    until = at + pause_length()
    values = {"paused_until": until, "pause_reason": reason[:MAX_REASON], "updated_at": p.updated_at}
    new = update(providers_t).where(p.id == provider.id).values(**values)
    if not probe:
        new = new.where(or_(p.paused_until.is_(None), p.paused_until <= at))
    if not conn.execute(new).rowcount:
        # Paused already by another message's refusal: only ever lengthened, never shortened.
        conn.execute(update(providers_t).where(p.id == provider.id, p.paused_until < until).values(**values))
        return False
    metrics.inc("smsqueue_provider_pauses_total", {"provider": provider.code})
    log.warning(
        "provider %s paused until %s: %s (its messages go to the next provider)",
        provider.code,
        until.isoformat(),
        reason,
    )
    return True


def claim_probe(conn: Connection, provider: Any, at: datetime, hold: float) -> datetime | None:
    """Take the one probe of a provider whose pause is over: it succeeds for one caller only. The pause is
    held `hold` seconds more (the probe call's longest time) so that nothing else goes meanwhile.
    Returns the new hold's end, or None when another claim took the probe first."""
    until = at + timedelta(seconds=hold)
    moved = conn.execute(
        update(providers_t)
        .where(p.id == provider.id, p.pause_reason.is_not(None), p.paused_until <= at)
        .values(paused_until=until, updated_at=p.updated_at)
    ).rowcount
    if moved:
        log.info("provider %s: its pause is over; one message goes as the probe", provider.code)
        return until
    return None


def resume(conn: Connection, provider: Any) -> None:
    """The probe got through (or was refused for a reason of its own): all traffic again."""
    done = conn.execute(
        update(providers_t)
        .where(p.id == provider.id, p.pause_reason.is_not(None))
        .values(paused_until=None, pause_reason=None, updated_at=p.updated_at)
    ).rowcount
    if done:
        log.warning("provider %s resumed: the probe got through", provider.code)
