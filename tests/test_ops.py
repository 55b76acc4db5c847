"""Health, readiness and metrics endpoints, and the Procfile's promise to consume every queue."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_needs_no_key(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_readyz_checks_database_and_broker(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_with_a_problem_when_the_broker_is_down(client, redis_server):
    redis_server.stop()
    try:
        r = client.get("/readyz")
    finally:
        redis_server.start()
    assert r.status_code == 503
    assert r.content_type == "application/problem+json"
    assert r.json["code"] == "unavailable" and r.headers["Retry-After"]
    assert r.json["checks"] == {"database": "ok", "broker": "unreachable"}


def test_metrics_are_prometheus_text(client, factory):
    entity = factory.entity(factory.provider())
    headers = factory.headers(entity)
    for _ in range(3):
        client.post("/api/v1/messages", json={"to": "+79161234567", "text": "x"}, headers=headers)
    from smsqueue import metrics

    metrics.observe("smsqueue_provider_send_seconds", {"provider": "p1"}, 0.07, metrics.SEND_SECONDS_BUCKETS)
    metrics.inc("smsqueue_provider_errors_total", {"provider": "p1", "code": "9"})
    metrics.flush(force=True)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    text = r.get_data(as_text=True)
    assert 'smsqueue_messages{status="queued"} 3' in text
    assert 'smsqueue_provider_errors_total{code="9",provider="p1"} 1' in text
    assert "# TYPE smsqueue_provider_send_seconds histogram" in text
    buckets = re.findall(r'smsqueue_provider_send_seconds_bucket\{le="([^"]+)",provider="p1"\} (\d+)', text)
    les = [float("inf") if le == "+Inf" else float(le) for le, _ in buckets]
    assert les == sorted(les) and les[-1] == float("inf")
    counts = {le: int(c) for le, c in buckets}
    assert counts["0.05"] == 0 and counts["0.1"] == 1 and counts["+Inf"] == 1
    assert 'smsqueue_provider_send_seconds_count{provider="p1"} 1' in text
