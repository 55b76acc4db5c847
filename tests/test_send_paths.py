"""Send paths users rely on, each through a real worker (and beat where time has to pass), the provider
simulator over HTTP and the API: a bad number ends `failed`/`invalid_number`; a `valid_until` that passes
while a message waits or retries ends it `expired` on time; a scheduled and a deferred message reach the
provider when due; a requested provider is the one used; `retries_exhausted`, `no_provider_available`
and `provider_not_allowed` decided at send time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_provider_pipeline import PHONE, base_url, events, message, wait_final, wait_status

from smsqueue.clock import iso

pytestmark = pytest.mark.pipeline

# How late a time-driven change may come: the beat's sweep interval, a doorbell, two busy cores.
ON_TIME = 2.5


def post(client: Any, factory: Any, entity: Any, **fields: Any) -> str:
    body = {"to": PHONE, "text": "hello", **fields}
    r = client.post("/api/v1/messages", json=body, headers=factory.headers(entity))
    assert r.status_code == 202, r.json
    return r.json["id"]


def set_link(client: Any, factory: Any, entity: Any, provider: Any, **fields: Any) -> None:
    path = f"/api/v1/legal-entities/{entity.code}/providers/{provider.code}"
    r = client.put(path, json=fields, headers=factory.headers())
    assert r.status_code == 200, r.json


def trail(mid: str) -> list[tuple[str, str | None]]:
    return [(e.status, e.reason) for e in events(mid)]


def event_at(mid: str, status: str) -> datetime:
    return next(e.at for e in events(mid) if e.status == status)


# --- a bad number -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "answer", "code"),
    [
        pytest.param("smsc", 7, "7", id="smsc-7-bad-phone-format"),
        pytest.param("smsru", 202, "202", id="smsru-202-bad-recipient"),
        pytest.param("smsaero", "Invalid phone number", "invalid_number", id="smsaero-number-message"),
    ],
)
def test_a_bad_number_answer_ends_failed_invalid_number_with_the_providers_code(
    client, factory, processes, sims, kind: str, answer: int | str, code: str
):
    refusing, other = sims(kind, behaviour={"error_code": answer}), sims()
    entity = factory.entity(factory.provider(base_url(refusing), kind=kind), factory.provider(other.url))
    mid = post(client, factory, entity)
    processes.worker()

    final = wait_final(mid)
    assert (final.status, final.reason) == ("failed", "invalid_number")
    assert trail(mid) == [("queued", None), ("sending", None), ("failed", "invalid_number")]
    detail = events(mid)[-1].detail
    assert detail["error_code"] == code  # the provider's own answer stays on record
    assert detail["number_problem"] is True
    assert refusing.stats()["requests"]["send"] == 1
    assert other.stats()["requests"] == {}  # no other provider can reach a bad number


# --- valid_until ------------------------------------------------------------------------------------------


def test_a_message_retrying_past_its_valid_until_expires_on_time(client, factory, processes, sims):
    """The retry would come after valid_until: the message ends `expired` at valid_until, not later."""
    down = sims(behaviour={"fail_http": 500})
    entity = factory.entity(factory.provider(down.url))
    processes.worker(SMSQUEUE_RETRY_BASE_SECONDS="20", SMSQUEUE_RETRY_MAX_SECONDS="20")
    processes.beat()
    valid_until = datetime.now(UTC) + timedelta(seconds=3)
    mid = post(client, factory, entity, valid_until=iso(valid_until))

    final = wait_final(mid, timeout=15)
    assert (final.status, final.reason) == ("expired", None)
    assert trail(mid) == [
        ("queued", None),
        ("sending", None),
        ("queued", "provider_error:http_500"),
        ("expired", None),
    ]
    assert valid_until <= event_at(mid, "expired") <= valid_until + timedelta(seconds=ON_TIME)
    assert down.stats()["requests"]["send"] == 1


def next_opening(zone: ZoneInfo, at_least: float) -> datetime:
    """The next whole minute (local) at least `at_least` seconds away, before local midnight."""
    while True:
        local = datetime.now(zone)
        opening = (local + timedelta(seconds=at_least + 60)).replace(second=0, microsecond=0)
        if opening.date() == local.date() and opening.hour * 60 + opening.minute < 24 * 60 - 1:
            return opening
        time.sleep(5)  # a minute before midnight: the window would cross it; wait for the new day


def test_a_deferred_message_goes_when_the_window_opens_and_one_that_expires_first_does_not(
    client, factory, processes, sims
):
    """Outside the send window: deferred to its opening, then sent at once; a valid_until that comes
    first ends the wait `expired`, on time."""
    zone = ZoneInfo("Europe/Moscow")
    opening = next_opening(zone, at_least=8)
    closing = opening + timedelta(minutes=30)
    sim = sims(behaviour={"delivery_delay": 0})
    entity = factory.entity(
        factory.provider(sim.url),
        timezone="Europe/Moscow",
        send_window_from=opening.strftime("%H:%M"),
        send_window_to=closing.strftime("%H:%M"),
    )
    processes.worker()
    processes.beat()
    deferred = post(client, factory, entity)
    valid_until = opening - timedelta(seconds=3)
    expiring = post(client, factory, entity, valid_until=iso(valid_until))

    wait_status(deferred, "scheduled")
    assert trail(deferred)[-1] == ("scheduled", "outside_send_window")
    assert message(deferred).send_at == opening.astimezone(UTC)
    assert sim.received() == []

    final = wait_final(expiring, timeout=80)
    assert (final.status, final.reason) == ("expired", None)
    assert trail(expiring) == [("queued", None), ("scheduled", "outside_send_window"), ("expired", None)]
    assert valid_until <= event_at(expiring, "expired") <= valid_until + timedelta(seconds=ON_TIME)

    wait_status(deferred, "sent", "delivered", timeout=80)
    received = sim.received()
    assert len(received) == 1  # the deferred one only
    assert opening.timestamp() <= received[0].received_at <= opening.timestamp() + ON_TIME
    assert [s for s, _ in trail(deferred)][:4] == ["queued", "scheduled", "queued", "sending"]


def test_a_scheduled_message_reaches_the_provider_when_due(client, factory, processes, sims):
    sim = sims(behaviour={"delivery_delay": 0})
    entity = factory.entity(factory.provider(sim.url))
    processes.worker()
    processes.beat()
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    mid = post(client, factory, entity, send_at=iso(send_at))
    assert message(mid).status == "scheduled"

    wait_status(mid, "sent", "delivered", timeout=15)
    [received] = sim.received()
    assert send_at.timestamp() <= received.received_at <= send_at.timestamp() + ON_TIME
    assert [s for s, _ in trail(mid)][:4] == ["scheduled", "queued", "sending", "sent"]


# --- which provider -----------------------------------------------------------------------------------------


def test_a_requested_provider_is_the_one_used(client, factory, processes, sims):
    first_sim, second_sim = sims(), sims()
    first, second = factory.provider(first_sim.url), factory.provider(second_sim.url, code="wanted")
    entity = factory.entity(first, second)
    asked, default = post(client, factory, entity, provider="wanted"), post(client, factory, entity)
    processes.worker()

    assert wait_status(asked, "sent", "delivered").provider_id == second.id
    assert wait_status(default, "sent", "delivered").provider_id == first.id
    assert [m.text for m in second_sim.received()] == ["hello"]
    assert len(first_sim.received()) == 1  # the default one, by priority
    assert [e.detail["provider"] for e in events(asked) if e.status == "sending"] == ["wanted"]


def test_retries_exhausted_on_the_only_provider_and_on_a_requested_one(client, factory, processes, sims):
    down, up = sims(behaviour={"fail_http": 500}), sims()
    only = factory.entity(factory.provider(down.url, code="down"))
    two = factory.entity(factory.provider(down.url, code="down-too"), factory.provider(up.url))
    alone, asked = post(client, factory, only), post(client, factory, two, provider="down-too")
    processes.worker()
    processes.beat()  # retries are rung by the sweep at their due time, not by a broker countdown

    for mid in (alone, asked):
        final = wait_final(mid)
        assert (final.status, final.reason) == ("failed", "retries_exhausted")
        assert trail(mid)[1:] == [
            ("sending", None),
            ("queued", "provider_error:http_500"),
            ("sending", None),
            ("queued", "provider_error:http_500"),
            ("sending", None),
            ("failed", "retries_exhausted"),
        ]
        assert events(mid)[-1].detail["last_error"] == "provider_error:http_500"
    assert down.stats()["requests"]["send"] == 6
    assert up.stats()["requests"] == {}  # the caller asked for the other one: no failover


def test_no_provider_available_and_provider_not_allowed_when_links_change_after_acceptance(
    client, factory, processes, sims
):
    sim = sims()
    first, second = factory.provider(sim.url), factory.provider(sim.url, code="asked-for")
    only_one = factory.entity(first)
    two = factory.entity(first, second)
    nothing_left = post(client, factory, only_one)
    not_allowed = post(client, factory, two, provider="asked-for")
    # Accepted while the links were usable; switched off before any worker sends.
    set_link(client, factory, only_one, first, enabled=False)
    set_link(client, factory, two, second, enabled=False)
    processes.worker()

    final = wait_final(nothing_left)
    assert (final.status, final.reason) == ("failed", "no_provider_available")
    assert trail(nothing_left) == [("queued", None), ("failed", "no_provider_available")]
    final = wait_final(not_allowed)
    assert (final.status, final.reason) == ("rejected", "provider_not_allowed")
    assert trail(not_allowed) == [("queued", None), ("rejected", "provider_not_allowed")]
    assert sim.stats()["requests"] == {}
