"""The whole pipeline with real processes: web (test client) -> PostgreSQL + Redis -> a real Celery worker
and beat -> the provider simulator over HTTP -> status polling -> delivered."""

from __future__ import annotations

import pytest
from conftest import wait_for
from sqlalchemy import select

from smsqueue.db import transaction
from smsqueue.models import Message

pytestmark = pytest.mark.pipeline


def statuses(ids: list[str]) -> dict[str, str]:
    import uuid

    with transaction() as conn:
        rows = conn.execute(
            select(Message.id, Message.status).where(Message.id.in_([uuid.UUID(i) for i in ids]))
        )
        return {str(r.id): r.status for r in rows}


def test_a_message_posted_ends_delivered_with_its_events_in_order(client, factory, processes, simulator):
    entity = factory.entity(factory.provider(simulator.url))
    headers = factory.headers(entity)
    processes.worker()
    processes.beat()
    r = client.post("/api/v1/messages", json={"to": "8 916 123-45-67", "text": "Привет!"}, headers=headers)
    assert r.status_code == 202
    mid = r.json["id"]
    wait_for(lambda: statuses([mid])[mid] == "delivered", 30, what="delivered")
    body = client.get(f"/api/v1/messages/{mid}", headers=headers).json
    assert [e["status"] for e in body["events"]] == ["queued", "sending", "sent", "delivered"]
    assert body["provider_message_id"]
    received = simulator.received()
    assert len(received) == 1
    assert received[0].phone.lstrip("+") == "79161234567"
    assert received[0].text == "Привет!"
