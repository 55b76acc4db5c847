"""Metrics that cost the same with a long history as with none: unfinished messages and the sweeps'
backlog through partial indexes, final statuses, webhooks, reports and the rate limiter as counters."""

from __future__ import annotations

import re

from sqlalchemy import text

from smsqueue import metrics
from smsqueue.db import transaction


def scrape(client) -> str:
    metrics.flush(force=True)
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def value(text_: str, line_start: str) -> float:
    match = re.search(rf"^{re.escape(line_start)} (\S+)$", text_, re.M)
    assert match, f"{line_start} not in:\n{text_}"
    return float(match.group(1))


def test_unfinished_by_status_final_counters_and_the_sweeps_backlog(client, factory):
    entity = factory.entity(factory.provider())
    headers = factory.headers(entity)
    ids = [
        client.post("/api/v1/messages", json={"to": "+79161234567", "text": "x"}, headers=headers).get_json()[
            "id"
        ]
        for _ in range(3)
    ]
    assert client.post(f"/api/v1/messages/{ids[0]}/cancel", headers=headers).status_code == 200
    # History (final messages) is not counted by a scrape: a thousand delivered rows change nothing.
    with transaction() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (id, legal_entity_id, recipient, text, status, segments, encoding, "
                "attempts, status_checks, event_seq, created_at, updated_at) "
                "SELECT gen_random_uuid(), :e, '+79160000000', 'old', 'delivered', 1, 'GSM7', 1, 0, 1, "
                "now(), now() "
                "FROM generate_series(1, 1000)"
            ),
            {"e": entity.id},
        )
    page = scrape(client)
    assert value(page, 'smsqueue_messages{status="queued"}') == 2
    assert value(page, 'smsqueue_messages{status="sent"}') == 0
    assert 'status="delivered"} 1000' not in page
    assert value(page, 'smsqueue_messages_final_total{status="canceled"}') >= 1
    assert "# TYPE smsqueue_messages_final_total counter" in page
    for sweep in ("dispatch_scheduled", "republish_lost", "reconcile_sending", "poll_statuses"):
        assert f'smsqueue_sweep_backlog{{sweep="{sweep}"}}' in page


def test_the_rate_limiter_counts_its_refusals(client, factory):
    admin = factory.headers()
    made = client.post(
        "/api/v1/keys", json={"role": "admin", "rate_limit_per_second": 1}, headers=admin
    ).get_json()
    answers = [
        client.get("/api/v1/keys", headers={"Authorization": f"Bearer {made['key']}"}) for _ in range(5)
    ]
    refused = sum(a.status_code == 429 for a in answers)
    assert refused >= 1
    page = scrape(client)
    assert value(page, f'smsqueue_rate_limited_total{{key="{made["id"]}"}}') >= refused


def test_webhook_and_report_metrics_are_declared_counters():
    for name, kind in (
        ("smsqueue_webhook_attempts_total", "counter"),
        ("smsqueue_webhook_failures_total", "counter"),
        ("smsqueue_webhook_lag_seconds", "histogram"),
        ("smsqueue_delivery_reports_total", "counter"),
        ("smsqueue_messages_purged_total", "counter"),
    ):
        assert metrics.HELP[name][0] == kind


def test_jobs_rows_and_unfinished_jobs(client, factory):
    """CSV jobs: rows stored by outcome and jobs ended by status are counters; jobs not finished a gauge."""
    import uuid

    from smsqueue import jobs

    entity = factory.entity(factory.provider())
    headers = factory.headers(entity)
    body = b"to,text\n+79161234567,a\nnot-a-number,b\n+79161234568,c\n"
    before = scrape(client)
    r = client.post("/api/v1/jobs", data=body, content_type="text/csv", headers=headers)
    assert r.status_code == 202, r.get_json()
    waiting = scrape(client)
    assert value(waiting, 'smsqueue_jobs{status="pending"}') >= 1
    for _ in jobs.run(jobs.find(uuid.UUID(r.get_json()["id"])).pk):
        pass
    page = scrape(client)

    def grew(line: str) -> float:
        old = value(before, line) if line in before else 0.0
        return value(page, line) - old

    assert grew('smsqueue_job_rows_total{outcome="accepted"}') == 2
    assert grew('smsqueue_job_rows_total{outcome="invalid"}') == 1
    assert grew('smsqueue_jobs_finished_total{status="done"}') == 1
    assert (
        value(page, 'smsqueue_jobs{status="pending"}')
        == value(waiting, 'smsqueue_jobs{status="pending"}') - 1
    )
    assert "# TYPE smsqueue_job_rows_total counter" in page and "# TYPE smsqueue_jobs gauge" in page
