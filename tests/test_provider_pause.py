"""A provider whose account cannot send is paused, not retried: through the whole pipeline with real
worker and beat processes, PostgreSQL, Redis and the simulators over HTTP.

With the primary's account out of funds, 100 messages all go to the secondary, none calling the primary
more than once; the provider shows `paused_until` and `pause_reason`; after the pause exactly one
message is let through as the probe (refused again: paused again; taken: all traffic again). Plus the
claim's own rules, against the database: a paused provider is passed by, one probe only, and a message
with only paused providers waits."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from conftest import wait_for
from sqlalchemy import select, update
from test_provider_pipeline import events, message, send, wait_status

from smsqueue.clock import iso, now
from smsqueue.db import transaction
from smsqueue.messages import DUE_TOLERANCE, Followups, messages_t
from smsqueue.models import Provider
from smsqueue.sending import claim

pytestmark = pytest.mark.pipeline

PAUSE = 8  # seconds, for the test (SMSQUEUE_PROVIDER_PAUSE_SECONDS; 300 by default)


def provider_row(code: str):
    with transaction() as conn:
        return conn.execute(select(Provider.__table__).where(Provider.code == code)).one()


def primary_calls(mid: str, code: str) -> int:
    return sum(1 for e in events(mid) if e.status == "sending" and e.detail["provider"] == code)


def wait_pause_over(code: str) -> None:
    until = provider_row(code).paused_until
    assert until is not None
    time.sleep(max(0.0, (until - now()).total_seconds()) + 0.2)


def post_batch(client, factory, entity, count: int, tag: str) -> list[str]:
    items = [{"to": f"+7916{i:07d}", "text": f"{tag} {i}"} for i in range(count)]
    r = client.post("/api/v1/messages/batch", json={"messages": items}, headers=factory.headers(entity))
    assert r.status_code == 200, r.json
    return [x["id"] for x in r.json["results"]]


def test_an_account_out_of_funds_pauses_its_provider_then_one_probe(client, factory, processes, sims):
    broke = sims("smstraffic", behaviour={"balance": 0, "delivery_delay": 60})  # 415 to every send
    fine = sims(behaviour={"delivery_delay": 60})
    primary = factory.provider(broke.url, kind="smstraffic", code="primary")
    secondary = factory.provider(fine.url, code="secondary")
    entity = factory.entity(primary, secondary)
    worker = processes.worker(SMSQUEUE_PROVIDER_PAUSE_SECONDS=str(PAUSE))
    processes.beat()

    ids = post_batch(client, factory, entity, 100, "first")
    wait_for(lambda: all(message(i).status == "sent" for i in ids), 60, 0.2, "100 sent")
    assert {message(i).provider_id for i in ids} == {secondary.id}
    # No message was handed to the primary more than once (a call is made only after a claim for it).
    per_message = Counter(primary_calls(i, "primary") for i in ids)
    assert max(per_message) <= 1, per_message
    first_wave = broke.stats()["requests"]["send"]
    assert 1 <= first_wave <= sum(n * k for n, k in per_message.items())
    print(f"\n100 messages, primary out of funds: {first_wave} calls to the primary, all sent by the other")
    # Those claimed for it failed over without a retry counted: refused (415), or not sent there once an
    # earlier call of their batch was refused (`paused`).
    trails = [events(i)[2] for i in ids if primary_calls(i, "primary")]
    reasons = Counter((e.status, e.reason) for e in trails)
    assert set(reasons) <= {("queued", "provider_error:415"), ("queued", "provider_error:paused")}, reasons
    assert reasons[("queued", "provider_error:415")] == first_wave

    shown = client.get("/api/v1/providers/primary", headers=factory.headers()).json
    assert shown["pause_reason"] == "provider_error:415" and shown["paused_until"] is not None
    assert "s3cret" not in str(shown)
    assert re.search(r"provider primary paused until .*provider_error:415", worker.output())

    # After the pause: one message goes to the primary as the probe; refused, the provider is paused again.
    wait_pause_over("primary")
    before = provider_row("primary").paused_until
    more = post_batch(client, factory, entity, 10, "second")
    wait_for(lambda: all(message(i).status == "sent" for i in more), 30, 0.2, "10 more sent")
    assert broke.stats()["requests"]["send"] == first_wave + 1
    assert sum(primary_calls(i, "primary") for i in more) == 1
    assert {message(i).provider_id for i in more} == {secondary.id}
    assert provider_row("primary").paused_until > before
    assert len(re.findall(r"provider primary paused until", worker.output())) == 2  # the probe's refusal

    # The account is paid: the next probe is taken, and the pause lifted; then all traffic goes there.
    broke.set_behaviour(balance=1000)
    wait_pause_over("primary")
    probe = send(client, factory, entity, "probe")
    assert wait_status(probe, "sent").provider_id == primary.id
    wait_for(lambda: provider_row("primary").pause_reason is None, 10, 0.1, "the pause lifted")
    assert provider_row("primary").paused_until is None
    after = post_batch(client, factory, entity, 5, "third")
    wait_for(lambda: all(message(i).status == "sent" for i in after), 30, 0.2, "5 more sent")
    assert {message(i).provider_id for i in after} == {primary.id}
    wait_for(
        lambda: (
            'smsqueue_provider_pauses_total{provider="primary"} 2'
            in client.get("/metrics").get_data(as_text=True)
        ),
        15,
        0.5,
        "two pauses counted",
    )


# --- the claim's rules, against the database ------------------------------------------------------------


def queued_pks(client, factory, entity, count: int) -> list[int]:
    ids = post_batch(client, factory, entity, count, "x")
    return [message(i).pk for i in ids]


def set_pause(code: str, seconds: float, reason: str | None = "provider_error:3") -> None:
    with transaction() as conn:
        conn.execute(
            update(Provider.__table__)
            .where(Provider.code == code)
            .values(paused_until=now() + timedelta(seconds=seconds), pause_reason=reason)
        )


def test_a_paused_provider_is_passed_by_and_a_message_with_no_other_waits(client, factory):
    paused, other = factory.provider(code="paused"), factory.provider(code="other")
    both, alone = factory.entity(paused, other), factory.entity(paused)
    set_pause("paused", 60)
    pks = queued_pks(client, factory, both, 3) + queued_pks(client, factory, alone, 2)
    with transaction() as conn:
        claimed = claim(conn, pks, now(), Followups())
    assert sorted(c.message.pk for c in claimed) == pks[:3]
    assert {c.link.provider.code for c in claimed} == {"other"} and not any(c.probe for c in claimed)
    with transaction() as conn:
        waiting = conn.execute(
            select(messages_t.c.status, messages_t.c.next_attempt_at).where(messages_t.c.pk.in_(pks[3:]))
        ).all()
    until = provider_row("paused").paused_until
    assert {(w.status, w.next_attempt_at) for w in waiting} == {("queued", until)}  # no event: still queued
    assert [e.status for e in events(str(message_id(pks[3])))] == ["queued"]
    # One that expires before the pause ends is due again at its expiry, not after the pause.
    valid_until = now() + timedelta(seconds=20)
    r = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "text": "x", "valid_until": iso(valid_until)},
        headers=factory.headers(alone),
    )
    pk = message(r.json["id"]).pk
    with transaction() as conn:
        claim(conn, [pk], now(), Followups())
    assert message(r.json["id"]).next_attempt_at == message(r.json["id"]).valid_until + DUE_TOLERANCE


def test_after_the_pause_one_message_only_is_the_probe(client, factory):
    paused, other = factory.provider(code="paused"), factory.provider(code="other")
    entity = factory.entity(paused, other)
    set_pause("paused", -1)  # over: the next message is the probe
    pks = queued_pks(client, factory, entity, 4)
    with transaction() as conn:
        claimed = claim(conn, pks[:2], now(), Followups())
    with transaction() as conn:
        claimed += claim(conn, pks[2:], now(), Followups())  # a second claim: the probe is out
    probes = [c for c in claimed if c.probe]
    assert len(probes) == 1 and probes[0].link.provider.code == "paused"
    assert Counter(c.link.provider.code for c in claimed) == {"paused": 1, "other": 3}
    assert provider_row("paused").paused_until > now()  # held while the probe is out


def message_id(pk: int) -> str:
    with transaction() as conn:
        return str(conn.execute(select(messages_t.c.id).where(messages_t.c.pk == pk)).scalar_one())


@pytest.mark.parametrize(
    ("kind", "answer", "reason", "pauses"),
    [
        (
            "smsc",
            4,
            "provider_error:4",
            True,
        ),  # our address blocked for a while: transient, yet the account's
        ("smsc", 3, "provider_error:3", True),  # no funds
        ("smsru", 204, "provider_error:204", False),  # the sender name not approved: this message's matter
        ("smsc", 6, "provider_error:6", False),  # this message forbidden (text or sender name)
    ],
)
def test_only_the_account_s_refusals_pause_and_every_refusal_fails_over_at_once(
    client, factory, sims, kind, answer, reason, pauses
):
    from smsqueue.sending import process

    refusing, other = sims(kind, behaviour={"error_code": answer}), sims()
    first = factory.provider(refusing.url, kind=kind, code="first")
    entity = factory.entity(first, factory.provider(other.url, code="other"))
    [pk] = queued_pks(client, factory, entity, 1)
    process([pk])  # refused: back to queued for the next provider, no retry counted
    row = provider_row("first")
    assert (row.pause_reason is not None, row.pause_reason) == (pauses, reason if pauses else None)
    if pauses:
        assert row.paused_until > now() + timedelta(seconds=250)  # SMSQUEUE_PROVIDER_PAUSE_SECONDS: 300
    process([pk])
    mid = message_id(pk)
    assert (message(mid).status, message(mid).attempts) == ("sent", 1)
    assert [(e.status, e.reason) for e in events(mid)] == [
        ("queued", None),
        ("sending", None),
        ("queued", reason),
        ("sending", None),
        ("sent", None),
    ]
    assert refusing.stats()["requests"]["send"] == 1
