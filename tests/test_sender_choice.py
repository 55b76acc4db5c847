"""Which sender name each provider gets, seen at the provider's own server (the simulator records the
sender of every send it takes), with a real worker.

Operators register sender names per aggregator account, so a provider that takes a message over from
another must get its own link's sender, never the one of the provider it replaced; a caller's own
`sender` goes to whichever provider sends."""

from __future__ import annotations

from typing import Any

import pytest
from test_provider_pipeline import PHONE, events, message, wait_status

from smsqueue.db import session_scope
from smsqueue.models import LegalEntity, Provider
from smsqueue.rules import admin

pytestmark = pytest.mark.pipeline


def entity_with_links(factory: Any, *links: tuple[Provider, str | None]) -> LegalEntity:
    """An entity whose providers (in priority order) each have their own link sender."""
    entity = factory.entity()
    with session_scope() as session:
        row = session.merge(entity)
        for priority, (provider, sender) in enumerate(links, start=1):
            admin.link_provider(session, row, session.merge(provider), priority=priority, sender=sender)
    return entity


def post(client: Any, factory: Any, entity: LegalEntity, **fields: Any) -> str:
    body = {"to": PHONE, "text": "hello", **fields}
    r = client.post("/api/v1/messages", json=body, headers=factory.headers(entity))
    assert r.status_code == 202, r.json
    return r.json["id"]


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param({"fail_http": 500}, id="transient-retried-then-failover"),
        pytest.param({"error_code": 3}, id="provider-wide-refusal"),
    ],
)
def test_the_provider_that_takes_over_gets_its_own_links_sender(
    client, factory, processes, sims, failing: dict[str, Any]
):
    down, up, bare = sims(behaviour=failing), sims(behaviour={"delivery_delay": 0}), sims()
    first, second = factory.provider(down.url, code="first"), factory.provider(up.url, code="second")
    third = factory.provider(bare.url, code="third")
    to_second = post(client, factory, entity_with_links(factory, (first, "ALPHA"), (second, "BRAVO")))
    to_bare = post(client, factory, entity_with_links(factory, (first, "ALPHA"), (third, None)))
    processes.worker()
    processes.beat()  # retries are rung by the sweep at their due time, not by a broker countdown

    wait_status(to_second, "sent", "delivered")
    wait_status(to_bare, "sent", "delivered")
    assert [m.sender for m in up.received()] == ["BRAVO"]
    assert [m.sender for m in bare.received()] == [None]  # its link names none: none, not ALPHA
    assert down.received() == []
    assert [e.detail["provider"] for e in events(to_second) if e.status == "sending"][-1] == "second"
    # The message shows the sender it was sent with.
    assert (message(to_second).sender, message(to_bare).sender) == ("BRAVO", None)


def test_a_callers_own_sender_goes_to_whichever_provider_sends(client, factory, processes, sims):
    down, up = sims(behaviour={"fail_http": 500}), sims(behaviour={"delivery_delay": 0})
    first, second = factory.provider(down.url), factory.provider(up.url)
    entity = entity_with_links(factory, (first, "ALPHA"), (second, "BRAVO"))
    fails_over = post(client, factory, entity, sender="MYSHOP")
    processes.worker()
    processes.beat()  # retries are rung by the sweep at their due time
    wait_status(fails_over, "sent", "delivered")
    assert [m.sender for m in up.received()] == ["MYSHOP"]

    # And the first provider, when it works, gets the caller's sender too (and its link's otherwise).
    down.set_behaviour(fail_http=None)
    own, default = post(client, factory, entity, sender="MYSHOP"), post(client, factory, entity)
    wait_status(own, "sent", "delivered")
    wait_status(default, "sent", "delivered")
    assert sorted(m.sender for m in down.received()) == ["ALPHA", "MYSHOP"]
    assert (message(own).sender, message(default).sender) == ("MYSHOP", "ALPHA")


def test_a_send_found_by_the_reconcile_sweep_records_its_own_links_sender(client, factory):
    """A message whose call timed out and that the provider turned out to have (the reconcile sweep's
    `record_sent`, which has no claimed sender at hand) shows the sender of the provider that has it."""
    from smsqueue import recording, sending
    from smsqueue.clock import now
    from smsqueue.db import transaction
    from smsqueue.messages import Followups
    from smsqueue.providers.base import SendResult

    first, second = factory.provider(), factory.provider()
    mid = post(client, factory, entity_with_links(factory, (first, "ALPHA"), (second, "BRAVO")))
    pk = message(mid).pk
    with transaction() as conn:
        [claimed] = sending.claim(conn, [pk], now(), Followups())
    assert (claimed.sender, message(mid).sender) == ("ALPHA", None)  # chosen, not yet stored
    with transaction() as conn:
        recording.record_sent(conn, message(mid), first, SendResult("1"), now())
    assert (message(mid).status, message(mid).sender) == ("sent", "ALPHA")
