"""230-FZ limits through the whole pipeline with real processes: twelve messages to one number posted at
once, two Celery worker processes of four each claiming them concurrently against PostgreSQL, the
provider simulator counting what reaches it. Exactly `per_day` may get through."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import wait_for
from sqlalchemy import select

from smsqueue.db import transaction
from smsqueue.models import Message

pytestmark = pytest.mark.pipeline

PHONE = "+79161234567"
N = 12
OPEN = {"from": "00:00", "to": "24:00"}


def midday_zone() -> str:
    """A fixed-offset zone where it is now around midday, so no local day ends during the test (the
    counts are per local day) whatever hour the suite runs at."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3
        if 9 <= now.astimezone(ZoneInfo(name)).hour <= 14:
            return name
    raise AssertionError("some offset always has midday")


def rows(ids: list[str]) -> list:
    with transaction() as conn:
        return list(
            conn.execute(
                select(Message.status, Message.reason, Message.send_at).where(
                    Message.id.in_([uuid.UUID(i) for i in ids])
                )
            )
        )


def settle(ids: list[str], waiting: str) -> list:
    """Wait until none of the messages is queued or sending any more."""
    wait_for(
        lambda: all(r.status not in ("queued", "sending") for r in rows(ids)),
        60,
        0.1,
        what="messages to settle",
    )
    return rows(ids)


def run_twelve(client, factory, processes, simulator, on_limit: str) -> tuple[list, str, dict]:
    admin = factory.headers()
    factory.provider(simulator.url, code="sim")
    body = {
        "code": "acme",
        "send_window": OPEN,
        "fz": {"per_day": 2, "weekday_hours": OPEN, "weekend_hours": OPEN, "on_limit": on_limit},
        "providers": [{"provider": "sim", "sender": "ACME"}],
    }
    assert client.post("/api/v1/legal-entities", json=body, headers=admin).status_code == 201
    headers = factory.headers("acme")
    zone = midday_zone()
    processes.worker(concurrency=4, name="w1")
    processes.worker(concurrency=4, name="w2")
    ids = []
    for i in range(N):
        r = client.post(
            "/api/v1/messages",
            json={"to": PHONE, "text": f"m{i}", "recipient_timezone": zone},
            headers=headers,
        )
        assert r.status_code == 202, r.json
        ids.append(r.json["id"])
    settled = settle(ids, on_limit)
    check = client.get(
        "/api/v1/legal-entities/acme/providers/sim/check",
        query_string={"to": PHONE, "recipient_timezone": zone},
        headers=admin,
    )
    assert check.status_code == 200
    return settled, zone, check.json


def test_twelve_at_once_with_two_a_day_send_two_and_reject_ten(client, factory, processes, simulator):
    settled, _, check = run_twelve(client, factory, processes, simulator, "reject")
    outcomes = sorted((r.status, r.reason) for r in settled)
    sent = [o for o in outcomes if o[0] in ("sent", "delivered")]
    assert len(sent) == 2, outcomes
    assert [o for o in outcomes if o not in sent] == [("rejected", "fz_daily_limit")] * 10
    wait_for(lambda: len(simulator.received()) >= 2, 10, what="the provider to have 2")
    assert len(simulator.received()) == 2
    assert {m.phone.lstrip("+") for m in simulator.received()} == {PHONE.lstrip("+")}
    assert {k: check["counts"][k] for k in ("day", "week", "month")} == {"day": 2, "week": 2, "month": 2}
    assert check["allowed"] is False and check["reasons"] == ["fz_daily_limit"]


def test_twelve_at_once_with_on_limit_defer_schedule_ten_for_the_next_local_day(
    client, factory, processes, simulator
):
    settled, zone, check = run_twelve(client, factory, processes, simulator, "defer")
    tz = ZoneInfo(zone)
    tomorrow = datetime.combine(datetime.now(tz).date() + timedelta(days=1), time(), tzinfo=tz)
    sent = [r for r in settled if r.status in ("sent", "delivered")]
    deferred = [r for r in settled if r.status == "scheduled"]
    assert (len(sent), len(deferred)) == (2, 10), [(r.status, r.reason) for r in settled]
    assert {(r.reason, r.send_at) for r in deferred} == {("fz_daily_limit", tomorrow.astimezone(UTC))}
    assert len(simulator.received()) == 2
    assert {k: check["counts"][k] for k in ("day", "week", "month")} == {"day": 2, "week": 2, "month": 2}
