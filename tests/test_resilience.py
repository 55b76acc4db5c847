"""Failures of the parts around us: a worker killed mid-flight, Redis stopped, PostgreSQL unreachable.
No accepted message is lost, none is sent twice, and the API answers 503 rather than half-writing."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from conftest import wait_for
from sqlalchemy import func, select, text

from smsqueue.db import get_engine, transaction
from smsqueue.models import Message
from smsqueue.rules.limits import lock_key
from smsqueue.rules.subjects import scope_of
from smsqueue.statuses import FINAL

pytestmark = pytest.mark.pipeline


def status_counts(entity_id: int) -> Counter[str]:
    with transaction() as conn:
        rows = conn.execute(
            select(Message.status, func.count())
            .where(Message.legal_entity_id == entity_id)
            .group_by(Message.status)
        )
        return Counter(dict(rows.all()))


def all_final(entity_id: int, total: int) -> bool:
    counts = status_counts(entity_id)
    return sum(counts.values()) == total and all(s in FINAL for s in counts)


def refs_received(simulator) -> Counter[str]:
    return Counter(m.ref for m in simulator.received())


def test_worker_killed_with_200_in_flight_loses_none_and_sends_none_twice(
    client, factory, processes, simulator
):
    # Slow answers keep many messages in the middle of their provider call when the worker dies.
    simulator.set_behaviour(delay_seconds=0.05, delivery_delay=0.2)
    entity = factory.entity(factory.provider(simulator.url))
    headers = factory.headers(entity)
    processes.beat()
    worker = processes.worker(concurrency=4)
    items = [{"to": f"+7916{i:07d}", "text": f"msg {i}"} for i in range(200)]
    r = client.post("/api/v1/messages/batch", json={"messages": items}, headers=headers)
    assert r.status_code == 200 and all("id" in x for x in r.json["results"])
    wait_for(lambda: len(simulator.received()) >= 30, 60, what="some sends before the kill")
    worker.kill(9)
    at_kill = len(simulator.received())
    assert at_kill < 200, "everything was sent before the kill: the test proved nothing"
    processes.worker(concurrency=4)
    wait_for(lambda: all_final(entity.id, 200), 120, 0.2, "every message to end in a final status")
    counts = status_counts(entity.id)
    assert counts == Counter({"delivered": 200}), counts
    refs = refs_received(simulator)
    assert len(refs) == 200 and max(refs.values()) == 1, [r for r, n in refs.items() if n > 1]


def test_worker_killed_in_the_middle_of_a_500_message_claim_loses_none_and_sends_none_twice(
    client, factory, processes, simulator
):
    """The worker dies inside its claim transaction, with 500 due messages locked and the rules half
    done (held on one number's 230-FZ lock, which the test takes first): nothing of the claim commits,
    so all 500 are still `queued`, the sweep rings for them, and the next worker sends each once."""
    simulator.set_behaviour(delivery_delay=0.2)
    entity = factory.entity(factory.provider(simulator.url))
    items = [{"to": f"+7916{i:07d}", "text": f"msg {i}"} for i in range(500)]
    held = get_engine().connect()
    held.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(scope_of(entity), "+79160000250")})
    worker = processes.worker(concurrency=2, SMSQUEUE_SEND_BATCH_SIZE="500")
    r = client.post("/api/v1/messages/batch", json={"messages": items}, headers=factory.headers(entity))
    assert r.status_code == 200 and all("id" in x for x in r.json["results"])
    wait_for(lambda: waiting_on_advisory_lock() == 1, 60, 0.1, "the claim to wait on the held number")
    assert takeable(entity.id) == 0, "the claim holds all 500 locked"
    worker.kill(9)
    held.rollback()  # the dead worker's backend gets the lock, finds its client gone, and rolls back
    held.close()
    wait_for(lambda: takeable(entity.id) == 500, 60, 0.1, "the dead claim's locks to be released")
    assert status_counts(entity.id) == Counter({"queued": 500})
    assert simulator.received() == []
    processes.beat()
    processes.worker(concurrency=2)
    wait_for(lambda: all_final(entity.id, 500), 180, 0.3, "every message to end in a final status")
    assert status_counts(entity.id) == Counter({"delivered": 500})
    refs = refs_received(simulator)
    assert len(refs) == 500 and max(refs.values()) == 1, [r for r, n in refs.items() if n > 1]


def waiting_on_advisory_lock() -> int:
    """Backends of this test's database waiting for an advisory lock (the 230-FZ number locks)."""
    with transaction() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
        ).scalar_one()


def takeable(entity_id: int) -> int:
    """How many of the entity's messages no other transaction holds locked."""
    with transaction() as conn:
        return len(
            conn.execute(
                select(Message.pk)
                .where(Message.legal_entity_id == entity_id)
                .with_for_update(skip_locked=True)
            ).all()
        )


def test_redis_stopped_while_posting_every_message_is_delivered_once_after(
    client, factory, processes, simulator, redis_server
):
    simulator.set_behaviour(delivery_delay=0.1)
    entity = factory.entity(factory.provider(simulator.url))
    headers = factory.headers(entity)
    processes.beat()
    processes.worker(concurrency=2)
    redis_server.stop()
    try:
        started = time.monotonic()
        ids = []
        for i in range(20):
            r = client.post(
                "/api/v1/messages", json={"to": f"+7903{i:07d}", "text": "while down"}, headers=headers
            )
            assert r.status_code == 202, r.json
            ids.append(r.json["id"])
        # Accepting does not wait on the broken broker.
        assert time.monotonic() - started < 20
        time.sleep(1)
        assert status_counts(entity.id) == Counter({"queued": 20})
    finally:
        redis_server.start()
    wait_for(lambda: all_final(entity.id, 20), 90, 0.2, "delivery after Redis came back")
    assert status_counts(entity.id) == Counter({"delivered": 20})
    refs = refs_received(simulator)
    assert len(refs) == 20 and max(refs.values()) == 1


@pytest.fixture
def proxied_database(monkeypatch):
    """Point this process's engine at the test database through a TCP proxy that a test can cut."""
    import os
    from urllib.parse import urlsplit

    from tcp_proxy import TcpProxy

    from smsqueue import db
    from smsqueue.config import settings

    url = os.environ["DATABASE_URL"]
    parts = urlsplit(url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    monkeypatch.setenv("DATABASE_URL", url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}"))
    settings.cache_clear()
    db.reset_engine()
    yield proxy
    proxy.close()
    monkeypatch.undo()
    settings.cache_clear()
    db.reset_engine()


def stored_texts() -> list[str]:
    from smsqueue import db

    engine = db.make_engine(__import__("os").environ["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(Message.text).order_by(Message.pk)).scalars())
    finally:
        engine.dispose()


def test_postgresql_unreachable_is_503_and_nothing_half_written(client, factory, proxied_database):
    entity = factory.entity(factory.provider())
    headers = factory.headers(entity)
    assert (
        client.post(
            "/api/v1/messages", json={"to": "+79161234567", "text": "before"}, headers=headers
        ).status_code
        == 202
    )

    proxied_database.cut()
    r = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "during"}, headers=headers)
    assert r.status_code == 503
    assert r.content_type == "application/problem+json"
    assert r.json["code"] == "unavailable" and r.headers["Retry-After"]
    assert client.get("/readyz").status_code == 503

    # Connection lost in the middle of the transaction, as the insert goes out (the message and its event
    # row are one statement: none or both).
    proxied_database.restore()
    proxied_database.drop_on = b"EXECUTE smsqueue_insert_message"
    r = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "half"}, headers=headers)
    assert r.status_code == 503 and r.json["code"] == "unavailable"
    assert proxied_database.dropped == 1
    proxied_database.drop_on = b"INSERT INTO message_events"
    batch = {"messages": [{"to": "+79161234567", "text": f"batch {i}"} for i in range(5)]}
    assert client.post("/api/v1/messages/batch", json=batch, headers=headers).status_code == 503

    proxied_database.drop_on = None
    after = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "after"}, headers=headers)
    assert after.status_code == 202
    assert stored_texts() == ["before", "after"]
    with transaction() as conn:
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM messages m "
            "WHERE NOT EXISTS (SELECT 1 FROM message_events e WHERE e.message_pk = m.pk)"
        ).scalar_one()
    assert orphans == 0
    assert uuid.UUID(after.json["id"])


# Realistic clocks (the suite's fast ones would hide a grace period): a lost doorbell is re-rung only
# after 30 s, the first status check comes 10 s after sending; a broker restart must need neither.
REALISTIC = {
    "SMSQUEUE_SWEEP_INTERVAL": "1",
    "SMSQUEUE_LOST_PUBLISH_AFTER": "30",
    "SMSQUEUE_STATUS_CHECK_FIRST": "10",
    "SMSQUEUE_STATUS_CHECK_MAX": "60",
    "SMSQUEUE_RETRY_BASE_SECONDS": "4",
    "SMSQUEUE_RETRY_MAX_SECONDS": "8",
}


def test_after_a_broker_restart_new_and_waiting_messages_are_sent_and_followed_within_seconds(
    client, factory, processes, simulator, redis_server
):
    import requests

    simulator.set_behaviour(delivery_delay=0)
    provider = factory.provider(simulator.url)
    entity = factory.entity(provider)
    headers = factory.headers(entity)
    _, web = processes.web(workers=2, **REALISTIC)
    simulator.set_behaviour(
        report_url=f"{web}/api/v1/providers/{provider.code}/dlr?token={provider.plain_callback_token}"
    )
    processes.worker(concurrency=2, SMSQUEUE_PUBLIC_URL=web, **REALISTIC)
    processes.beat(**REALISTIC)

    def post(text: str) -> str:
        r = requests.post(
            f"{web}/api/v1/messages", json={"to": "+79161234567", "text": text}, headers=headers
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def ended(ids: list[str], timeout: float, what: str) -> None:
        wait_for(lambda: set(statuses(ids).values()) == {"delivered"}, timeout, 0.1, what)

    # Warm every kept connection (the web's and the worker's publishers) before the broker goes away.
    ended([post(f"warm {i}") for i in range(4)], 20, "the first messages to be delivered")
    # One message waits for a retry when the broker goes: its first attempt is refused with a 500.
    simulator.set_behaviour(fail_http=500, fail_http_times=1)
    retried = post("retried")
    wait_for(lambda: waits_for_retry(retried), 10, 0.05, "the first attempt to be refused")
    redis_server.stop()
    try:
        # Accepted (by another web process: the web's kept connections stay as they were), not rung.
        during = [
            client.post(
                "/api/v1/messages", json={"to": "+79161234567", "text": f"during {i}"}, headers=headers
            )
            for i in range(3)
        ]
        assert all(r.status_code == 202 for r in during)
        time.sleep(3)
    finally:
        redis_server.start()  # empty: whatever the broker held is gone
    wait_for(lambda: _ready(web), 30, 0.1, "/readyz to be 200 again")
    started = time.monotonic()
    after = [post(f"after {i}") for i in range(5)]
    ended(after, 8, "messages accepted after /readyz was 200 to be delivered within seconds")
    ended(
        [retried, *(r.json["id"] for r in during)],
        10,
        "messages from before the restart to be delivered promptly",
    )
    assert time.monotonic() - started < 10
    refs = refs_received(simulator)
    assert max(refs.values()) == 1, [r for r, n in refs.items() if n > 1]


def _ready(web: str) -> bool:
    import requests

    try:
        return requests.get(f"{web}/readyz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def waits_for_retry(message_id: str) -> bool:
    with transaction() as conn:
        row = conn.execute(
            select(Message.status, Message.attempts).where(Message.id == uuid.UUID(message_id))
        ).one()
    return row.status == "queued" and row.attempts == 1


def statuses(ids: list[str]) -> dict[str, str]:
    with transaction() as conn:
        rows = conn.execute(
            select(Message.id, Message.status).where(Message.id.in_([uuid.UUID(i) for i in ids]))
        )
        return {str(r.id): r.status for r in rows}
