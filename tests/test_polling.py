"""Status polling against the simulator over HTTP: final statuses recorded, the wait between checks
growing, and 72 hours without a final report ending `undelivered` with `status_timeout`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from smsqueue import polling
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.messages import messages_t
from smsqueue.models import MessageEvent
from smsqueue.sending import process

m = messages_t.c


def sent_messages(client, factory, simulator, count: int) -> list[int]:
    entity = factory.entity(factory.provider(simulator.url, kind=simulator.kind))
    headers = factory.headers(entity)
    items = [{"to": f"+7916{i:07d}", "text": f"m{i}"} for i in range(count)]
    ids = [
        x["id"]
        for x in client.post("/api/v1/messages/batch", json={"messages": items}, headers=headers).json[
            "results"
        ]
    ]
    with transaction() as conn:
        pks = list(conn.execute(select(m.pk).where(m.legal_entity_id == entity.id).order_by(m.pk)).scalars())
    process(pks)
    with transaction() as conn:
        statuses = set(conn.execute(select(m.status).where(m.pk.in_(pks))).scalars())
        conn.execute(
            update(messages_t).where(m.pk.in_(pks)).values(next_status_check_at=now() - timedelta(seconds=1))
        )
    assert statuses == {"sent"} and len(ids) == count
    return pks


def rows(pks: list[int]) -> dict[int, tuple[str, str | None, int]]:
    with transaction() as conn:
        found = conn.execute(select(m.pk, m.status, m.reason, m.status_checks).where(m.pk.in_(pks)))
        return {r.pk: (r.status, r.reason, r.status_checks) for r in found}


def test_final_statuses_are_recorded_and_the_rest_checked_again_later(client, factory, simulator):
    simulator.set_behaviour(delivery_delay=0)
    delivered = sent_messages(client, factory, simulator, 5)
    simulator.set_behaviour(delivery_delay=3600)
    pending = sent_messages(client, factory, simulator, 3)
    assert polling.poll_due() == 8
    found = rows(delivered + pending)
    assert {found[pk][:2] for pk in delivered} == {("delivered", None)}
    assert {found[pk] for pk in pending} == {("sent", None, 1)}
    with transaction() as conn:
        due = conn.execute(select(m.next_status_check_at).where(m.pk.in_(pending))).scalars().all()
        events = (
            conn.execute(
                select(MessageEvent.detail).where(
                    MessageEvent.message_pk == delivered[0], MessageEvent.status == "delivered"
                )
            )
            .scalars()
            .all()
        )
    assert all(d > now() for d in due)  # not due again at once
    assert events == [{"source": "poll", "provider_status": "1"}]
    assert polling.poll_due() == 0


def test_no_final_report_in_72_hours_ends_undelivered(client, factory, simulator):
    simulator.set_behaviour(delivery_delay=3600)
    pks = sent_messages(client, factory, simulator, 2)
    with transaction() as conn:
        conn.execute(
            update(messages_t).where(m.pk == pks[0]).values(sent_at=now() - timedelta(hours=72, minutes=1))
        )
    polling.poll_due()
    found = rows(pks)
    assert found[pks[0]][:2] == ("undelivered", "status_timeout")
    assert found[pks[1]][:2] == ("sent", None)


def test_smstraffic_is_polled_for_its_2_day_window_only(client, factory, sims):
    # SMS Traffic forgets statuses after 2 days ("no such message"): polling ends there, not at 72 h.
    sim = sims("smstraffic", behaviour={"delivery_delay": 3600})
    pks = sent_messages(client, factory, sim, 3)
    with transaction() as conn:
        conn.execute(
            update(messages_t).where(m.pk == pks[0]).values(sent_at=now() - timedelta(days=2, minutes=1))
        )
        conn.execute(
            update(messages_t).where(m.pk == pks[1]).values(sent_at=now() - timedelta(days=1, hours=23))
        )
    asked = sim.stats()["requests"].get("status", 0)
    assert polling.poll_due() == 3
    assert sim.stats()["requests"]["status"] == asked + 1  # the three in one batched call
    found = rows(pks)
    assert found[pks[0]][:2] == ("undelivered", "status_timeout")
    assert {found[pk][:2] for pk in pks[1:]} == {("sent", None)}
    with transaction() as conn:
        due = conn.execute(select(m.next_status_check_at).where(m.pk == pks[1])).scalar_one()
    # The next check is no later than the window's end.
    assert due <= now() + timedelta(hours=1, seconds=5)
