"""Status webhooks against a real receiver on loopback: body and signature, one POST per change in
sequence, retries with backoff, giving up, the receiver circuit breaker, lost workers, secret rotation,
and the admin list of attempts. The sweep and the delivery task run in this process here (the same code
the worker runs); test_webhooks_pipeline.py runs them in real worker processes."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import NewMessage, events_t, insert_messages, transition
from smsqueue.models.webhooks import WebhookAttempt, WebhookReceiver
from smsqueue.statuses import Status
from smsqueue.tasks import webhooks as webhook_tasks
from smsqueue.tasks.celery_app import app
from smsqueue.webhooks import delivery, outbox
from smsqueue.webhooks.attempts import LOST
from smsqueue.webhooks.backoff import retry_delay
from smsqueue.webhooks.payload import WebhookEvent, body_of
from smsqueue.webhooks.signing import sign, signed_headers
from smsqueue.webhooks.transport import INVALID_ORIGIN, origin_of, retry_after_seconds

# --- a receiver on loopback ---------------------------------------------------------------------------


@dataclass
class Received:
    at: float  # monotonic
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.raw)


class Receiver:
    """A threaded HTTP server that records every POST and answers as `answer(n, request)` says: a status,
    (status, headers), or "hang" (no answer until the test ends)."""

    def __init__(self, answer: Callable[[int, Received], Any] | None = None) -> None:
        self.answer = answer or (lambda n, req: 200)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = Received(time.monotonic(), self.path, {k: v for k, v in self.headers.items()}, raw)
                with receiver.lock:
                    receiver.received.append(req)
                    n = len(receiver.received)
                reply = receiver.answer(n, req)
                if reply == "hang":
                    receiver.released.wait(60)
                    self.close_connection = True
                    return
                status, headers = reply if isinstance(reply, tuple) else (reply, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook?token=t0k"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.json for r in self.received]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answer: Callable[[int, Received], Any] | None = None) -> Receiver:
        made.append(Receiver(answer))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def tune(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change settings for this test (environment + a fresh settings object)."""

    def apply(*presets: dict[str, str], **env: str) -> None:
        for name, value in {**{k: v for p in presets for k, v in p.items()}, **env}.items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()

    yield apply
    monkeypatch.undo()
    settings.cache_clear()


FAST = {
    "SMSQUEUE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SMSQUEUE_WEBHOOK_RETRY_MAX_SECONDS": "0.8",
    "SMSQUEUE_WEBHOOK_TIMEOUT": "2",
}


# --- helpers ------------------------------------------------------------------------------------------


def verify(req: Received, *secrets: str) -> bool:
    """What the receiving service does (README, "Receiving status webhooks")."""
    timestamp = req.headers["X-Smsqueue-Timestamp"]
    signed = timestamp.encode() + b"." + req.raw
    given = [
        req.headers.get("X-Smsqueue-Signature", ""),
        req.headers.get("X-Smsqueue-Signature-Previous", ""),
    ]
    for secret in secrets:
        expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


def message(entity: Any, callback_url: str | None, reference: str | None = "inv-42") -> tuple[int, str]:
    with transaction() as conn:
        (moved,) = insert_messages(
            conn,
            [
                NewMessage(
                    id=uuid.uuid4(),
                    legal_entity_id=entity.id,
                    to="+79161234567",
                    text="hi",
                    segments=1,
                    encoding="GSM-7",
                    callback_url=callback_url,
                    reference=reference,
                )
            ],
        )
    return moved.pk, str(moved.id)


def advance(pk: int, *path: Status) -> None:
    for src, dst in zip((Status.QUEUED, *path), path, strict=False):
        with transaction() as conn:
            assert transition(conn, pk, dst, expected={src}) is not None


def sweep() -> int:
    """The sweep, each receiver's claims delivered here as the worker would run its task."""
    claimed = 0
    for _, attempt_ids in outbox.deliveries_due():
        claimed += len(attempt_ids)
        delivery.deliver(attempt_ids)
    return claimed


def sweep_until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        sweep()
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def states(pk: int) -> list[tuple[int, str | None, int]]:
    with transaction() as conn:
        rows = conn.execute(
            select(events_t.c.seq, events_t.c.webhook_state, events_t.c.webhook_attempts)
            .where(events_t.c.message_pk == pk)
            .order_by(events_t.c.seq)
        )
        return [tuple(r) for r in rows]


def attempts(client: Any, factory: Any, mid: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/messages/{mid}/webhooks", headers=factory.headers())
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["items"]


# --- body and signature -------------------------------------------------------------------------------


def test_body_is_exactly_the_contract_and_the_signature_is_hmac_of_timestamp_dot_body():
    at = now().replace(microsecond=123000)
    body = body_of(uuid.UUID(int=1), "acme", None, "sent", None, at, 3)
    assert list(json.loads(body)) == [
        "event",
        "id",
        "legal_entity",
        "reference",
        "status",
        "reason",
        "at",
        "sequence",
    ]
    assert json.loads(body) == {
        "event": "message.status", "id": "00000000-0000-0000-0000-000000000001", "legal_entity": "acme",
        "reference": None, "status": "sent", "reason": None,
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.123Z"), "sequence": 3,
    }  # fmt: skip
    WebhookEvent.model_validate_json(body)
    headers = signed_headers("whsec_a", None, body, 1700000000)
    expected = hmac.new(b"whsec_a", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Smsqueue-Signature"] == f"sha256={expected}"
    assert headers["X-Smsqueue-Timestamp"] == "1700000000"
    assert headers["Content-Type"] == "application/json"
    assert "X-Smsqueue-Signature-Previous" not in headers
    both = signed_headers("whsec_b", "whsec_a", body, 1700000000)
    assert both["X-Smsqueue-Signature-Previous"] == f"sha256={expected}"


def test_backoff_grows_exponentially_with_jitter_and_covers_a_day():
    s = settings()
    delays = [retry_delay(n, s) for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        cap = min(s.webhook_retry_max, s.webhook_retry_base * 2 ** (n - 1))
        assert cap * 0.5 <= d <= cap
    assert s.webhook_retry_for >= 24 * 3600  # the default: at least a day
    assert retry_after_seconds("120") == 120
    assert 55 <= retry_after_seconds(
        (now() + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    ) <= 60  # fmt: skip
    assert retry_after_seconds("soon") is None
    assert origin_of("https://Example.COM/x?y") == "https://example.com:443"
    assert origin_of("http://[::1]:81/") == "http://[::1]:81"
    assert origin_of("ftp://x/") == INVALID_ORIGIN


# --- delivery -----------------------------------------------------------------------------------------


def test_a_new_message_posts_a_signed_event_the_receiver_can_verify(client, factory, receivers):
    receiver = receivers()
    entity = factory.entity(callback_url=receiver.url)
    r = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "text": "hi", "reference": "inv-42"},
        headers=factory.headers(entity),
    )
    assert r.status_code == 202
    mid = r.get_json()["id"]
    sweep_until(lambda: receiver.received)
    (req,) = receiver.received
    assert req.path == "/hook?token=t0k"
    assert req.headers["Content-Type"] == "application/json"
    assert abs(int(req.headers["X-Smsqueue-Timestamp"]) - time.time()) < 5
    assert verify(req, entity.plain_webhook_secret)
    assert not verify(req, "whsec_wrong")
    assert req.json == {
        "event": "message.status", "id": mid, "legal_entity": entity.code, "reference": "inv-42",
        "status": "queued", "reason": None, "at": r.get_json()["created_at"], "sequence": 1,
    }  # fmt: skip
    items = attempts(client, factory, mid)
    assert [(i["sequence"], i["attempt"], i["status_code"], i["error"]) for i in items] == [(1, 1, 200, None)]
    sweep()
    assert len(receiver.received) == 1  # delivered: never again


def test_one_post_per_change_in_sequence(client, factory, receivers):
    receiver = receivers()
    entity = factory.entity(callback_url=receiver.url)
    pk, mid = message(entity, receiver.url)
    advance(pk, Status.SENDING, Status.SENT, Status.DELIVERED)
    sweep_until(lambda: len(receiver.received) >= 4)
    sweep()
    bodies = receiver.bodies()
    assert [(b["sequence"], b["status"]) for b in bodies] == [
        (1, "queued"), (2, "sending"), (3, "sent"), (4, "delivered")
    ]  # fmt: skip
    assert {b["id"] for b in bodies} == {mid}
    assert all(verify(req, entity.plain_webhook_secret) for req in receiver.received)
    assert states(pk) == [(1, "delivered", 1), (2, "delivered", 1), (3, "delivered", 1), (4, "delivered", 1)]


def test_a_message_without_callback_url_posts_nothing(client, factory, receivers):
    receiver = receivers()
    entity = factory.entity()
    pk, mid = message(entity, None)
    advance(pk, Status.SENDING)
    assert sweep() == 0
    assert states(pk) == [(1, None, 0), (2, None, 0)]
    assert attempts(client, factory, mid) == []
    assert receiver.received == []


def test_the_next_sequence_waits_while_an_earlier_one_is_retried(client, factory, receivers, tune):
    tune(FAST)
    receiver = receivers(lambda n, req: 503 if req.json["sequence"] == 1 and n <= 2 else 200)
    entity = factory.entity()
    pk, _ = message(entity, receiver.url)
    advance(pk, Status.SENDING, Status.SENT)
    sweep_until(lambda: len(receiver.received) >= 5)
    assert [b["sequence"] for b in receiver.bodies()] == [1, 1, 1, 2, 3]


def test_500_three_times_then_200_gets_the_event_with_backoff(client, factory, receivers, tune):
    tune(FAST)
    receiver = receivers(lambda n, req: 500 if n <= 3 else 200)
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)
    sweep_until(lambda: states(pk)[0][1] == "delivered")
    assert len(receiver.received) == 4
    assert len({r.raw for r in receiver.received}) == 1  # the same event each time
    assert all(verify(r, entity.plain_webhook_secret) for r in receiver.received)
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # retry_base 0.2 s, doubling, jitter >= 50 %
    items = attempts(client, factory, mid)
    assert [(i["sequence"], i["attempt"], i["status_code"]) for i in items] == [
        (1, 1, 500), (1, 2, 500), (1, 3, 500), (1, 4, 200)
    ]  # fmt: skip


@pytest.mark.parametrize("code", [410, 400, 404, 301])
def test_another_4xx_or_a_redirect_gives_up_at_once(client, factory, receivers, tune, code):
    tune(FAST)
    receiver = receivers(lambda n, req: (code, {"Location": "http://127.0.0.1:9/"}) if code == 301 else code)
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)
    sweep_until(lambda: receiver.received)
    for _ in range(5):
        sweep()
        time.sleep(0.1)
    assert len(receiver.received) == 1
    assert states(pk) == [(1, "failed", 1)]
    assert [(i["attempt"], i["status_code"], i["error"]) for i in attempts(client, factory, mid)] == [
        (1, code, None)
    ]


def test_429_waits_for_retry_after(client, factory, receivers, tune):
    tune(FAST)
    receiver = receivers(lambda n, req: (429, {"Retry-After": "2"}) if n == 1 else 200)
    entity = factory.entity()
    pk, _ = message(entity, receiver.url)
    sweep_until(lambda: states(pk)[0][1] == "delivered", timeout=10)
    first, second = receiver.received
    assert second.at - first.at >= 1.9


def test_network_errors_are_retried_and_recorded(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD="10")
    receiver = receivers()
    dead = receivers()
    url = dead.url
    dead.stop()  # nothing listens there now: connection refused
    entity = factory.entity()
    pk, mid = message(entity, url)
    sweep_until(lambda: len(attempts(client, factory, mid)) >= 2)
    items = attempts(client, factory, mid)
    assert items[0]["status_code"] is None
    assert items[0]["error"] == "connection error: connection refused"
    assert "t0k" not in json.dumps(items)  # the URL (and its token) is never in an error
    assert states(pk)[0][1] == "pending"
    assert receiver.received == []


def test_a_slow_receiver_is_cut_at_the_timeout(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_TIMEOUT="0.5")
    receiver = receivers(lambda n, req: "hang")
    entity = factory.entity()
    _, mid = message(entity, receiver.url)
    started = time.monotonic()
    sweep()
    assert time.monotonic() - started < 3
    (item,) = attempts(client, factory, mid)
    assert item["status_code"] is None and item["error"] == "timeout: no answer within 0.5s"


def test_given_up_after_the_retry_period(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_RETRY_FOR_SECONDS="1", SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD="100")
    receiver = receivers(lambda n, req: 503)
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)
    sweep_until(lambda: states(pk)[0][1] == "failed")
    items = attempts(client, factory, mid)
    assert len(items) >= 2 and all(i["status_code"] == 503 for i in items)
    assert time.monotonic() - receiver.received[0].at >= 0.9  # the last attempt came after the period


def test_a_callback_url_refused_at_send_time_is_given_up_without_a_post(client, factory, receivers, tune):
    receiver = receivers()
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)  # accepted while private callbacks were allowed
    tune(SMSQUEUE_ALLOW_PRIVATE_CALLBACKS="false")
    sweep()
    assert receiver.received == []
    assert states(pk) == [(1, "failed", 1)]
    (item,) = attempts(client, factory, mid)
    assert item["status_code"] is None
    assert item["error"] == "callback_url refused: resolves to a loopback, private or link-local address"


# --- receiver protection ------------------------------------------------------------------------------


def test_a_dead_receiver_gets_probes_not_one_retry_per_event(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD="3", SMSQUEUE_WEBHOOK_PER_RECEIVER="4")
    receiver = receivers(lambda n, req: 503)
    entity = factory.entity()
    pks = [message(entity, receiver.url)[0] for _ in range(30)]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        sweep()
        time.sleep(0.05)
    # Without the breaker: 30 events each retried every 0.2-0.8 s for 3 s, well over 150 POSTs. With it: the
    # first round (4 in flight), then one probe per block (0.2 s doubling to 0.8 s).
    print("posts to the dead receiver:", len(receiver.received))
    assert 4 <= len(receiver.received) <= 15, len(receiver.received)
    with transaction() as conn:
        health = conn.execute(select(WebhookReceiver.__table__)).one()
    assert health.failures >= 3 and health.blocked_until is not None and health.last_status_code == 503
    assert all(s[0][1] == "pending" for s in map(states, pks))
    # It comes back: everything is delivered, the probe first.
    receiver.answer = lambda n, req: 200
    sweep_until(lambda: all(states(pk)[0][1] == "delivered" for pk in pks), timeout=20)
    with transaction() as conn:
        assert conn.execute(select(WebhookReceiver.failures)).scalar_one() == 0


def test_at_most_the_per_receiver_limit_is_in_flight(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_PER_RECEIVER="3", SMSQUEUE_WEBHOOK_TIMEOUT="1")
    inflight, peak = [0], [0]
    lock = threading.Lock()

    def slow(n: int, req: Received) -> int:
        with lock:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
        time.sleep(0.3)
        with lock:
            inflight[0] -= 1
        return 200

    receiver = receivers(slow)
    entity = factory.entity()
    pks = [message(entity, receiver.url)[0] for _ in range(10)]
    # Two sweeps at once (two beats, or a sweep beside a delivery task) still respect the limit.
    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sweep_until(lambda: all(states(pk)[0][1] == "delivered" for pk in pks))
    assert peak[0] == 3
    assert len(receiver.received) == 10


def expire_leases(pk: int) -> None:
    with transaction() as conn:
        past = now() - timedelta(seconds=1)
        conn.execute(update(events_t).where(events_t.c.message_pk == pk).values(webhook_next_at=past))
        conn.execute(update(WebhookAttempt.__table__).values(lease_until=past))


@pytest.mark.parametrize("died", ["before starting", "while posting"])
def test_a_lost_worker_is_recorded_and_the_event_delivered_again(client, factory, receivers, died):
    receiver = receivers()
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)
    claims = outbox.claim().claims  # a worker took it ...
    assert len(claims) == 1
    assert outbox.claim().claims == []  # (not due while leased)
    if died == "while posting":
        assert len(delivery.start([claims[0].attempt_id])) == 1
    expire_leases(pk)  # ... and died: its lease runs out
    sweep()
    assert len(receiver.received) == 1
    items = [(i["attempt"], i["status_code"], i["error"]) for i in attempts(client, factory, mid)]
    if died == "while posting":  # the POST may have gone out: recorded as lost, then a second attempt
        assert items == [(1, None, LOST), (2, 200, None)]
    else:  # nothing was sent: nothing to record
        assert items == [(1, 200, None)]
    assert receiver.received[0].json["sequence"] == 1
    # The dead worker's task, run late, finds its claim gone and posts nothing.
    delivery.deliver([claims[0].attempt_id])
    assert len(receiver.received) == 1


def test_a_failed_publish_releases_its_claims(client, factory, receivers, monkeypatch):
    receiver = receivers()
    entity = factory.entity()
    pk, mid = message(entity, receiver.url)

    def broken(*args: Any, **options: Any) -> None:
        raise ConnectionError("the broker is down")

    with monkeypatch.context() as patched:
        patched.setattr(app, "send_task", broken)
        assert webhook_tasks.sweep_webhooks() == 1  # the sweep task, run here: claimed one, gave it back
    assert states(pk) == [(1, "pending", 0)]
    assert attempts(client, factory, mid) == []
    sweep()
    assert [(i["attempt"], i["status_code"]) for i in attempts(client, factory, mid)] == [(1, 200)]


def test_a_hanging_receiver_does_not_delay_another_receivers_events(client, factory, receivers, tune):
    tune(FAST, SMSQUEUE_WEBHOOK_TIMEOUT="3")
    hanging = receivers(lambda n, req: "hang")
    healthy = receivers()
    entity = factory.entity()
    stuck, _ = message(entity, hanging.url)
    result = outbox.claim()
    assert len(result.claims) == 1
    worker = threading.Thread(target=delivery.deliver, args=([result.claims[0].attempt_id],))
    worker.start()  # one delivery task hangs on its receiver ...
    try:
        started = time.monotonic()
        pks = [message(entity, healthy.url)[0] for _ in range(5)]
        sweep_until(lambda: len(healthy.received) == 5, timeout=4)  # ... another goes on
        assert time.monotonic() - started < 2
        assert worker.is_alive() and len(hanging.received) == 1
        assert all(states(pk)[0][1] == "delivered" for pk in pks)
    finally:
        worker.join(10)
    assert states(stuck)[0][1] == "pending"


# --- secret rotation ----------------------------------------------------------------------------------


def test_secret_rotation_keeps_events_verifiable_with_either_secret(client, factory, receivers, tune):
    tune(FAST)
    receiver = receivers(lambda n, req: 503 if n == 1 else 200)
    entity = factory.entity()
    old = entity.plain_webhook_secret
    pk, _ = message(entity, receiver.url)
    sweep_until(lambda: receiver.received)  # the first attempt fails: the event is in flight
    assert verify(receiver.received[0], old)
    r = client.post(f"/api/v1/legal-entities/{entity.code}/webhook-secret", headers=factory.headers())
    assert r.status_code == 200
    body = r.get_json()
    new = body["webhook_secret"]
    assert new.startswith("whsec_") and new != old
    assert body["legal_entity"] == entity.code and body["previous_secret_valid_until"]
    assert r.headers["Cache-Control"] == "no-store"
    advance(pk, Status.SENDING)
    sweep_until(lambda: len(receiver.received) >= 3)
    for req in receiver.received[1:]:  # the retried event and the new one: signed with both
        assert verify(req, new) and verify(req, old)
        assert req.headers["X-Smsqueue-Signature"].removeprefix("sha256=") == sign(
            new, int(req.headers["X-Smsqueue-Timestamp"]), req.raw
        )
    assert [b["sequence"] for b in receiver.bodies()] == [1, 1, 2]
    # A rotation with no grace (a leaked secret) stops the old ones at once.
    r = client.post(
        f"/api/v1/legal-entities/{entity.code}/webhook-secret",
        json={"grace_seconds": 0},
        headers=factory.headers(),
    )
    assert r.status_code == 200 and r.get_json()["previous_secret_valid_until"] is None
    newest = r.get_json()["webhook_secret"]
    advance_from(pk, Status.SENDING, Status.SENT)
    sweep_until(lambda: len(receiver.received) >= 4)
    last = receiver.received[3]
    assert verify(last, newest) and not verify(last, new) and not verify(last, old)
    assert "X-Smsqueue-Signature-Previous" not in last.headers


def advance_from(pk: int, src: Status, dst: Status) -> None:
    with transaction() as conn:
        assert transition(conn, pk, dst, expected={src}) is not None


def test_rotation_and_attempts_need_an_admin_key(client, factory):
    entity = factory.entity()
    _, mid = message(entity, None)
    own = factory.headers(entity)
    assert client.post(f"/api/v1/legal-entities/{entity.code}/webhook-secret", headers=own).status_code == 403
    assert client.get(f"/api/v1/messages/{mid}/webhooks", headers=own).status_code == 403
    assert client.get(f"/api/v1/messages/{mid}/webhooks").status_code == 401
    admin = factory.headers()
    for code in ("nope", "no%00pe"):
        r = client.post(f"/api/v1/legal-entities/{code}/webhook-secret", headers=admin)
        assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert client.get(f"/api/v1/messages/{uuid.uuid4()}/webhooks", headers=admin).status_code == 404
    assert client.get("/api/v1/messages/not-a-uuid/webhooks", headers=admin).status_code == 404
    r = client.post(
        f"/api/v1/legal-entities/{entity.code}/webhook-secret", json={"grace_seconds": -1}, headers=admin
    )
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "grace_seconds"
    r = client.post(
        f"/api/v1/legal-entities/{entity.code}/webhook-secret",
        data="x",
        content_type="text/plain",
        headers=admin,
    )
    assert r.status_code == 415


# --- SQLite -------------------------------------------------------------------------------------------


def test_delivery_works_on_sqlite(tmp_path):
    """The embedded setup (`make run`): the same sweep, claims, retries and signatures on SQLite."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'smsqueue.db'}",
        SMSQUEUE_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(Path(__file__).parent),
        **FAST,
    )
    proc = subprocess.run(
        [sys.executable, __file__, "sqlite-scenario"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "scenario ok" in proc.stdout


def _sqlite_main() -> None:
    import os

    from smsqueue.cli import db_upgrade
    from smsqueue.db import session_scope
    from smsqueue.rules import admin

    assert os.environ["DATABASE_URL"].startswith("sqlite")
    db_upgrade()
    receiver = Receiver(lambda n, req: 503 if n == 1 else 200)
    try:
        with session_scope() as session:
            entity, secret = admin.create_entity(session, code="acme")
        pk, _ = message(entity, receiver.url)
        advance(pk, Status.SENDING, Status.SENT)
        sweep_until(lambda: len(receiver.received) >= 4)
        assert [b["sequence"] for b in receiver.bodies()] == [1, 1, 2, 3]
        assert all(verify(req, secret) for req in receiver.received)
        assert states(pk) == [(1, "delivered", 2), (2, "delivered", 1), (3, "delivered", 1)]
    finally:
        receiver.stop()
    print("scenario ok")


if __name__ == "__main__" and sys.argv[1:] == ["sqlite-scenario"]:
    _sqlite_main()
