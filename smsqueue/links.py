"""An entity's providers (its links, in priority order) and the choice of the one a message goes through.

Read by the sender's claim, its failover and the reconcile sweep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from smsqueue.models import EntityProvider, LegalEntity, Provider
from smsqueue.statuses import Reason, Status


@dataclass(frozen=True, slots=True)
class Link:
    provider: Any  # a `providers` row
    priority: int
    sender: str | None
    usable: bool  # the link and the provider are both enabled


@dataclass(slots=True)
class Context:
    entities: dict[int, Any]
    links: dict[int, list[Link]]  # by entity id, in priority order
    # providers' paused_until as this claim has changed it (a probe taken), by provider id
    pauses: dict[int, datetime | None] = field(default_factory=dict)

    def paused_until(self, provider: Any) -> datetime | None:
        return self.pauses.get(provider.id, provider.paused_until)

    def link(self, entity_id: int, provider_id: int) -> Link | None:
        return next((x for x in self.links.get(entity_id, []) if x.provider.id == provider_id), None)


def load_context(conn: Connection, entity_ids: Iterable[int]) -> Context:
    ids = sorted(set(entity_ids))
    if not ids:
        return Context({}, {})
    e, ep, p = LegalEntity.__table__, EntityProvider.__table__, Provider.__table__
    entities = {row.id: row for row in conn.execute(select(e).where(e.c.id.in_(ids)))}
    links: dict[int, list[Link]] = defaultdict(list)
    rows = conn.execute(
        select(ep.c.legal_entity_id, ep.c.priority, ep.c.sender, ep.c.enabled.label("link_enabled"), p)
        .join(p, p.c.id == ep.c.provider_id)
        .where(ep.c.legal_entity_id.in_(ids))
        .order_by(ep.c.legal_entity_id, ep.c.priority, p.c.id)
    )
    for row in rows:
        usable = bool(row.link_enabled and row.enabled)
        links[row.legal_entity_id].append(Link(row, row.priority, row.sender, usable))
    return Context(entities, dict(links))


@dataclass(frozen=True, slots=True)
class NoProvider:
    status: Status
    reason: str


@dataclass(frozen=True, slots=True)
class Paused:
    """Every provider the message could go through is paused: it waits, queued, until `until`."""

    until: datetime


# Takes the probe of a provider whose pause is over (smsqueue.pauses.claim_probe): the new hold's end,
# or None when another claim took it.
ProbeClaim = Callable[[Any], datetime | None]


def choose_link(
    ctx: Context,
    message: Any,
    excluded: Iterable[int] | None = None,
    *,
    at: datetime | None = None,
    probe: ProbeClaim | None = None,
) -> Link | NoProvider | Paused:
    """The provider a message goes through now: the one it asked for, else the entity's first usable
    one by priority that it has not given up on (`excluded`, by default the message's own list).

    With `at`, paused providers are passed by (smsqueue.pauses): one whose pause is over takes this
    message as its probe if `probe` gets it, else is passed by too; a message with only paused ones
    left waits for the first pause to end (`Paused`)."""
    links = ctx.links.get(message.legal_entity_id, [])
    excluded = set((message.excluded_providers or ()) if excluded is None else excluded)
    if message.requested_provider_id is not None:
        link = ctx.link(message.legal_entity_id, message.requested_provider_id)
        if link is None or not link.usable:
            return NoProvider(Status.REJECTED, Reason.PROVIDER_NOT_ALLOWED)
        if link.provider.id in excluded:
            return NoProvider(Status.FAILED, Reason.RETRIES_EXHAUSTED)
        candidates = [link]
    else:
        usable = [x for x in links if x.usable]
        if not usable:
            return NoProvider(Status.FAILED, Reason.NO_PROVIDER_AVAILABLE)
        candidates = [x for x in usable if x.provider.id not in excluded]
        if not candidates:
            return NoProvider(Status.FAILED, Reason.RETRIES_EXHAUSTED)
    if at is None:
        return candidates[0]
    waits: list[datetime] = []
    for link in candidates:
        until = ctx.paused_until(link.provider)
        if link.provider.pause_reason is None and (until is None or until <= at):
            return link
        if until is not None and until > at:
            waits.append(until)
            continue
        held = probe(link.provider) if probe is not None else None
        if held is not None:
            ctx.pauses[link.provider.id] = held
            return link
        # Another claim took the probe: its answer is awaited.
        ctx.pauses[link.provider.id] = at + PROBE_WAIT
        waits.append(at + PROBE_WAIT)
    return Paused(min(waits))


PROBE_WAIT = timedelta(seconds=5)  # how soon a message that found a probe out looks again


def sender_for(message: Any, link: Link) -> str | None:
    """The sender name this provider gets: the caller's own (`messages.sender`, which holds nothing
    else until the message is sent), else this provider's link's, else the provider's setting. Chosen
    anew at every claim, so a provider taking over never gets the name registered with the one before."""
    return message.sender or link.sender or (link.provider.settings or {}).get("sender")


@dataclass(slots=True)
class Claimed:
    message: Any  # the `messages` row as it was claimed
    link: Link
    sender: str | None
    attempt: int
    start_by: datetime | None = None  # the call is not started after this (see reconcile_window)
    probe: bool = False  # the one message let through to a provider whose pause is over
