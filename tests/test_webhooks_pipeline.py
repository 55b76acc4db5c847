"""Status webhooks end to end with real processes, split as in the Procfile: a worker for send, status
and periodic (the sweeps), a threaded worker for the webhooks queue, and beat; the provider simulator;
receivers on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import wait_for
from test_webhooks import Receiver, verify

pytestmark = pytest.mark.pipeline

WEBHOOK_ENV = {
    "SMSQUEUE_WEBHOOK_SWEEP_INTERVAL": "0.2",
    "SMSQUEUE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SMSQUEUE_WEBHOOK_RETRY_MAX_SECONDS": "1",
    "SMSQUEUE_WEBHOOK_TIMEOUT": "2",
}
PATH = ["queued", "sending", "sent", "delivered"]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answer: Callable[[int, Any], Any] | None = None) -> Receiver:
        made.append(Receiver(answer))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def start(processes: Any, **env: str) -> None:
    env = {**WEBHOOK_ENV, **env}
    processes.worker(queues="send,status,periodic", **env)
    processes.worker(queues="webhooks", pool="threads", concurrency=4, name="webhooks", **env)
    processes.beat(**env)


def make_entity(client: Any, factory: Any, provider: Any, callback_url: str) -> tuple[str, str]:
    """An entity made through the API: its code, and the webhook secret shown once in the 201 body."""
    code = f"wh-{time.monotonic_ns()}"
    r = client.post(
        "/api/v1/legal-entities",
        json={
            "code": code,
            "callback_url": callback_url,
            "send_window": {"from": "00:00", "to": "24:00"},
            "fz": {"enabled": False},
            "providers": [{"provider": provider.code, "priority": 1, "sender": "ACME"}],
        },
        headers=factory.headers(),
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    secret = r.get_json()["webhook_secret"]
    assert secret.startswith("whsec_")
    return code, secret


def send(client: Any, headers: dict[str, str], **fields: Any) -> str:
    r = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "hi", **fields}, headers=headers)
    assert r.status_code == 202, r.get_data(as_text=True)
    return r.get_json()["id"]


def sequences(receiver: Receiver, mid: str) -> list[tuple[int, str]]:
    return [(b["sequence"], b["status"]) for b in receiver.bodies() if b["id"] == mid]


def test_every_status_change_is_posted_once_in_sequence_and_verifies(
    client, factory, processes, simulator, receivers
):
    entity_hook, own_hook = receivers(), receivers()
    code, secret = make_entity(client, factory, factory.provider(simulator.url), entity_hook.url)
    headers = factory.headers(code)
    start(processes)
    by_entity = send(client, headers, reference="inv-1")
    by_message = send(client, headers, callback_url=own_hook.url)
    wait_for(lambda: len(sequences(entity_hook, by_entity)) >= 4, 30, what="4 webhooks to the entity's URL")
    wait_for(lambda: len(sequences(own_hook, by_message)) >= 4, 30, what="4 webhooks to the message's URL")
    time.sleep(1.0)  # nothing more comes
    for receiver, mid in ((entity_hook, by_entity), (own_hook, by_message)):
        assert sequences(receiver, mid) == [(n, status) for n, status in enumerate(PATH, start=1)]
        assert [b["id"] for b in receiver.bodies()] == [mid] * 4  # each message reports to its own URL only
        assert all(verify(req, secret) for req in receiver.received)
        assert not any(verify(req, "whsec_other") for req in receiver.received)
    message = client.get(f"/api/v1/messages/{by_entity}", headers=headers).get_json()
    posted = entity_hook.bodies()
    assert [b["at"] for b in posted] == [e["at"] for e in message["events"]]
    assert {(b["legal_entity"], b["reference"], b["event"]) for b in posted} == {
        (code, "inv-1", "message.status")
    }
    items = client.get(f"/api/v1/messages/{by_entity}/webhooks", headers=factory.headers()).get_json()[
        "items"
    ]
    assert [(i["sequence"], i["attempt"], i["status_code"], i["error"]) for i in items] == [
        (n, 1, 200, None) for n in range(1, 5)
    ]


def test_retried_until_the_receiver_answers_and_a_410_is_tried_once(
    client, factory, processes, simulator, receivers
):
    flaky = receivers(lambda n, req: 500 if n <= 3 else 200)
    gone = receivers(lambda n, req: 410)
    code, secret = make_entity(client, factory, factory.provider(simulator.url), flaky.url)
    headers = factory.headers(code)
    start(processes)
    retried = send(client, headers)
    refused = send(client, headers, callback_url=gone.url)
    wait_for(lambda: len(flaky.received) >= 7, 30, what="the flaky receiver's 7 POSTs")
    wait_for(lambda: len(gone.received) >= 4, 30, what="one POST per event to the 410 receiver")
    time.sleep(1.5)  # enough for several more retries, were there any
    assert [b["sequence"] for b in flaky.bodies()] == [1, 1, 1, 1, 2, 3, 4]
    assert all(verify(req, secret) for req in flaky.received)
    assert [b["sequence"] for b in gone.bodies()] == [1, 2, 3, 4]  # each event once: 410 is not retried
    admin = factory.headers()
    items = client.get(f"/api/v1/messages/{retried}/webhooks", headers=admin).get_json()["items"]
    assert [(i["sequence"], i["attempt"], i["status_code"]) for i in items] == [
        (1, 1, 500), (1, 2, 500), (1, 3, 500), (1, 4, 200), (2, 1, 200), (3, 1, 200), (4, 1, 200)
    ]  # fmt: skip
    items = client.get(f"/api/v1/messages/{refused}/webhooks", headers=admin).get_json()["items"]
    assert [(i["sequence"], i["attempt"], i["status_code"]) for i in items] == [
        (n, 1, 410) for n in range(1, 5)
    ]


def test_a_hanging_receiver_does_not_delay_other_messages_webhooks(
    client, factory, processes, simulator, receivers
):
    hanging = receivers(lambda n, req: "hang")
    healthy = receivers()
    code, _ = make_entity(client, factory, factory.provider(simulator.url), healthy.url)
    headers = factory.headers(code)
    start(processes, SMSQUEUE_WEBHOOK_TIMEOUT="10", SMSQUEUE_WEBHOOK_PER_RECEIVER="2")
    for _ in range(3):
        send(client, headers, callback_url=hanging.url)
    wait_for(lambda: len(hanging.received) >= 2, 20, what="the hanging receiver to be called")
    hung_at = hanging.received[0].at
    others = [send(client, headers) for _ in range(3)]
    wait_for(
        lambda: all(len(sequences(healthy, mid)) >= 4 for mid in others), 20, what="the healthy receiver"
    )
    # Every change of the other messages arrived while the hanging receiver still held its POSTs (10 s),
    # and the hanging one got no more than its per-receiver limit.
    assert healthy.received[-1].at - hung_at < 8
    assert len(hanging.received) == 2
    for mid in others:
        assert sequences(healthy, mid) == [(n, status) for n, status in enumerate(PATH, start=1)]
