"""Retention: final messages past their entity's retention_days go with their events and webhook
attempts, in batches that skip rows another transaction holds; the FZ counts stay; the beat runs it."""

from __future__ import annotations

from datetime import timedelta

from conftest import wait_for
from sqlalchemy import func, insert, select, text, update
from test_console import delivered_path, seed_message

from smsqueue import retention
from smsqueue.clock import now
from smsqueue.db import get_engine, transaction
from smsqueue.models import Message, MessageEvent
from smsqueue.models.limits import FzCounter
from smsqueue.models.webhooks import WebhookAttempt
from smsqueue.statuses import Status


def age(pk: int, days: float) -> None:
    at = now() - timedelta(days=days)
    with transaction() as conn:
        conn.execute(update(Message).where(Message.pk == pk).values(created_at=at, updated_at=at))


def existing(pks: list[int]) -> set[int]:
    with transaction() as conn:
        return set(conn.execute(select(Message.pk).where(Message.pk.in_(pks))).scalars())


def test_retention_days_is_an_entity_field_of_at_least_31(client, factory):
    admin = factory.headers()
    made = client.post("/api/v1/legal-entities", json={"code": "acme"}, headers=admin)
    assert made.get_json()["retention_days"] == 548
    bad = client.patch("/api/v1/legal-entities/acme", json={"retention_days": 30}, headers=admin)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "retention_days"
    good = client.patch("/api/v1/legal-entities/acme", json={"retention_days": 31}, headers=admin)
    assert good.get_json()["retention_days"] == 31
    assert (
        client.patch("/api/v1/legal-entities/acme", json={"retention_days": None}, headers=admin).status_code
        == 422
    )


def test_purge_deletes_only_final_messages_past_their_entitys_retention(factory):
    provider = factory.provider()
    short = factory.entity(provider, retention_days=40)
    long = factory.entity(provider, retention_days=548)
    old_final, _ = seed_message(short, path=delivered_path(provider))
    old_sent, _ = seed_message(short, path=delivered_path(provider)[:2])  # not final: kept
    recent_final, _ = seed_message(short, path=delivered_path(provider))
    other_old, _ = seed_message(long, path=delivered_path(provider))  # within its own entity's 548 days
    for pk in (old_final, old_sent, other_old):
        age(pk, 41)
    age(recent_final, 39)
    with transaction() as conn:
        event_id = (
            conn.execute(select(MessageEvent.id).where(MessageEvent.message_pk == old_final))
            .scalars()
            .first()
        )
        at = now()
        conn.execute(
            insert(WebhookAttempt).values(
                event_id=event_id,
                message_pk=old_final,
                sequence=1,
                attempt=1,
                receiver="http://x",
                at=at,
                lease_until=at,
            )
        )
        conn.execute(
            insert(FzCounter).values(
                scope=f"e:{short.id}",
                subject="+79161234567",
                period="day",
                period_start=at.date(),
                count=2,
            )
        )
    assert retention.purge(batch=2) == 1
    assert existing([old_final, old_sent, recent_final, other_old]) == {old_sent, recent_final, other_old}
    with transaction() as conn:
        assert (
            conn.scalar(
                select(func.count()).select_from(MessageEvent).where(MessageEvent.message_pk == old_final)
            )
            == 0
        )
        assert conn.scalar(select(func.count()).select_from(WebhookAttempt)) == 0
        assert conn.scalar(select(FzCounter.count).where(FzCounter.scope == f"e:{short.id}")) == 2


def test_purge_batches_skip_a_message_another_transaction_holds(factory):
    provider = factory.provider()
    entity = factory.entity(provider, retention_days=31)
    pks = [seed_message(entity, path=delivered_path(provider))[0] for _ in range(5)]
    for pk in pks:
        age(pk, 40)
    holder = get_engine().connect()
    try:
        tx = holder.begin()
        holder.execute(text("SELECT pk FROM messages WHERE pk = :pk FOR UPDATE"), {"pk": pks[0]})
        # Batches of 2: the held row is skipped, never waited for (this would hang otherwise).
        with transaction() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            assert retention.purge_batch(conn, entity.id, now() - timedelta(days=31), 2) == 2
        assert retention.purge(batch=2) == 2
        assert existing(pks) == {pks[0]}
        tx.rollback()
    finally:
        holder.close()
    assert retention.purge(batch=2) == 1
    assert existing(pks) == set()


def test_the_beat_runs_the_purge(processes, factory):
    provider = factory.provider()
    entity = factory.entity(provider, retention_days=31)
    pk, _ = seed_message(entity, path=delivered_path(provider))
    kept, _ = seed_message(entity, path=((Status.SENDING, None, None),))
    age(pk, 32)
    age(kept, 32)
    processes.worker(queues="periodic", SMSQUEUE_PURGE_INTERVAL="0.5")
    processes.beat(SMSQUEUE_PURGE_INTERVAL="0.5")
    wait_for(lambda: pk not in existing([pk]), 30, 0.2, "the purge to run")
    assert existing([kept]) == {kept}
