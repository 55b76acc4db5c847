"""The stop list through the whole pipeline, with a real worker, beat and PostgreSQL: an entry made
while 50 scheduled messages wait stops all 50 (rejected `stop_list`, none reaches the provider), while a
message to another number, due at the same time, is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import wait_for
from sqlalchemy import select

from smsqueue.db import transaction
from smsqueue.models import Message

pytestmark = pytest.mark.pipeline

PHONE = "+79161234567"
OTHER = "+79161234568"
N = 50


def statuses(ids: list[str]) -> list[tuple[str, str | None]]:
    with transaction() as conn:
        rows = conn.execute(
            select(Message.status, Message.reason).where(Message.id.in_([uuid.UUID(i) for i in ids]))
        )
        return [(r.status, r.reason) for r in rows]


def test_an_entry_made_while_fifty_scheduled_messages_wait_stops_all_fifty(
    client, factory, processes, simulator
):
    admin = factory.headers()
    entity = factory.entity(factory.provider(simulator.url, code="sim"), code="acme")
    headers = factory.headers(entity)
    send_at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    messages = [{"to": "8 916 123-45-67", "text": f"m{i}", "send_at": send_at} for i in range(N)]
    r = client.post("/api/v1/messages/batch", json={"messages": messages}, headers=headers)
    ids = [x["id"] for x in r.json["results"]]
    assert len(ids) == N and {x["status"] for x in r.json["results"]} == {"scheduled"}
    control = client.post(
        "/api/v1/messages", json={"to": OTHER, "text": "c", "send_at": send_at}, headers=headers
    )
    assert control.status_code == 202

    entry = client.put(
        f"/api/v1/legal-entities/acme/stop-list/numbers/{PHONE}",
        json={"reason": "refused", "document": "call recording 2026-12-03"},
        headers=admin,
    )
    assert entry.status_code == 201
    processes.worker(concurrency=4)
    processes.beat()

    everything = [*ids, control.json["id"]]
    wait_for(
        lambda: all(s not in ("scheduled", "queued", "sending") for s, _ in statuses(everything)),
        60,
        0.2,
        what="the messages to leave scheduled",
    )
    assert statuses(ids) == [("rejected", "stop_list")] * N
    wait_for(lambda: simulator.received(), 15, what="the control message at the provider")
    assert [m.phone.lstrip("+") for m in simulator.received()] == [OTHER.lstrip("+")]
    check = client.get(
        "/api/v1/legal-entities/acme/numbers/89161234567/history", headers=admin
    ).json  # the evidence: 50 decisions, none counted
    assert len(check["items"]) == N
    assert {(d["outcome"], tuple(d["reasons"])) for i in check["items"] for d in i["decisions"]} == {
        ("rejected", ("stop_list",))
    }
