"""Counting per person and per limit group through the whole pipeline with real processes: messages
posted at once, two Celery worker processes of four each claiming them concurrently against
PostgreSQL, the provider simulator counting what reaches it."""

from __future__ import annotations

import pytest
from test_rules_limits_pipeline import OPEN, midday_zone, settle

pytestmark = pytest.mark.pipeline

NUMBERS = ["+79161234567", "+79161234568", "+79161234569"]


def entity(client, admin, code: str, **fz) -> None:
    body = {
        "code": code,
        "send_window": OPEN,
        "fz": {"per_day": 2, "weekday_hours": OPEN, "weekend_hours": OPEN, **fz},
        "providers": [{"provider": "sim", "sender": "ACME"}],
    }
    assert client.post("/api/v1/legal-entities", json=body, headers=admin).status_code == 201


def test_twelve_at_once_to_three_numbers_of_one_debtor_send_two(client, factory, processes, simulator):
    admin = factory.headers()
    factory.provider(simulator.url, code="sim")
    entity(client, admin, "acme")
    headers = factory.headers("acme")
    zone = midday_zone()
    processes.worker(concurrency=4, name="w1")
    processes.worker(concurrency=4, name="w2")
    items = [
        {"to": NUMBERS[i % 3], "text": f"m{i}", "recipient_timezone": zone, "debtor": "loan-1"}
        for i in range(12)
    ]
    r = client.post("/api/v1/messages/batch", json={"messages": items[:6]}, headers=headers)
    ids = [x["id"] for x in r.json["results"]]
    ids += [client.post("/api/v1/messages", json=item, headers=headers).json["id"] for item in items[6:]]
    assert len(ids) == 12
    outcomes = sorted((r.status, r.reason) for r in settle(ids, "reject"))
    sent = [o for o in outcomes if o[0] in ("sent", "delivered")]
    assert len(sent) == 2, outcomes
    assert [o for o in outcomes if o not in sent] == [("rejected", "fz_daily_limit")] * 10
    assert len(simulator.received()) == 2
    check = client.get(
        "/api/v1/legal-entities/acme/providers/sim/check",
        query_string={"to": "+79161234560", "debtor": "loan-1", "recipient_timezone": zone},
        headers=admin,
    ).json
    assert check["counts"]["day"] == 2 and check["reasons"] == ["fz_daily_limit"]


def test_two_entities_of_one_limit_group_to_one_number_at_once_keep_the_groups_limit(
    client, factory, processes, simulator
):
    admin = factory.headers()
    factory.provider(simulator.url, code="sim")
    entity(client, admin, "bank", limit_group="bank-1", rolling_windows=True)
    entity(client, admin, "agency", limit_group="bank-1")
    zone = midday_zone()
    processes.worker(concurrency=4, name="w1")
    processes.worker(concurrency=4, name="w2")
    batches = {
        code: [{"to": NUMBERS[0], "text": f"{code}{i}", "recipient_timezone": zone} for i in range(6)]
        for code in ("bank", "agency")
    }
    ids = []
    for code, items in batches.items():
        r = client.post("/api/v1/messages/batch", json={"messages": items}, headers=factory.headers(code))
        ids += [x["id"] for x in r.json["results"]]
    outcomes = settle(ids, "reject")
    sent = [r for r in outcomes if r.status in ("sent", "delivered")]
    assert len(sent) == 2, [(r.status, r.reason) for r in outcomes]
    assert {(r.status, r.reason) for r in outcomes if r not in sent} == {("rejected", "fz_daily_limit")}
    assert len(simulator.received()) == 2
    for code in ("bank", "agency"):  # both see the group's counts
        check = client.get(
            f"/api/v1/legal-entities/{code}/providers/sim/check",
            query_string={"to": NUMBERS[0], "recipient_timezone": zone},
            headers=admin,
        ).json
        assert check["counts"]["day"] == 2 and check["allowed"] is False
