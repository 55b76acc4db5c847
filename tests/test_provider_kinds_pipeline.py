"""SMS Traffic and IQSMS through the whole pipeline with real processes: Celery worker (and beat)
processes, PostgreSQL and Redis, the simulators speaking each wire format over HTTP, and the app on a real
port for the reports SMS Traffic pushes.

Delivered by polling and by report (SMS Traffic's form report; IQSMS's status queue, drained by beat),
failover from each to another provider on an account error, and a send that times out at each: SMS
Traffic cannot be asked by our id (`unknown_outcome`), IQSMS is settled by `clientId`, sent once."""

from __future__ import annotations

import pytest
from conftest import wait_for
from test_provider_pipeline import dlr_url, events, message, send, wait_final, wait_status

from smsqueue import polling

pytestmark = pytest.mark.pipeline

RU_TEXT = "Привет! Ваш код 1234"


# --- failover -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "behaviour", "reason"),
    [
        ("smstraffic", {"balance": 0}, "provider_error:415"),  # no funds
        ("iqsms", {"error_code": "not enough balance"}, "provider_error:not_enough_balance"),
    ],
)
def test_an_account_error_fails_over_at_once_to_the_next_provider(
    client, factory, processes, sims, kind, behaviour, reason
):
    broke, other = sims(kind, behaviour=behaviour), sims()
    first = factory.provider(broke.url, kind=kind, code=kind)
    second = factory.provider(other.url, code="smsc")
    mid = send(client, factory, factory.entity(first, second))
    processes.worker()
    assert wait_status(mid, "sent").provider_id == second.id
    assert [(e.status, e.reason) for e in events(mid)] == [
        ("queued", None),
        ("sending", None),
        ("queued", reason),  # no retry there
        ("sending", None),
        ("sent", None),
    ]
    assert broke.stats()["requests"]["send"] == 1 and broke.received() == []


# --- SMS Traffic --------------------------------------------------------------------------------------


def test_smstraffic_delivered_by_polling(client, factory, processes, sims):
    sim = sims("smstraffic", behaviour={"delivery_delay": 0.5})
    provider = factory.provider(sim.url, kind="smstraffic")
    mid = send(client, factory, factory.entity(provider), RU_TEXT)
    processes.worker()
    processes.beat()
    final = wait_status(mid, "delivered")
    trail = events(mid)
    assert [e.status for e in trail] == ["queued", "sending", "sent", "delivered"]
    assert trail[-1].detail["source"] == "poll"
    [received] = sim.received()
    assert received.text == RU_TEXT  # rus=5: Cyrillic as it was, not transliterated
    assert received.ref == str(final.pk)  # bound by push_id to our id
    assert final.provider_message_id.startswith(received.provider_id)
    assert sim.stats()["requests"]["send"] == 1


def test_smstraffic_delivered_by_its_form_report(client, factory, processes, sims, live_server):
    sim = sims("smstraffic", behaviour={"delivery_delay": 1.0})
    provider = factory.provider(sim.url, kind="smstraffic")
    sim.set_behaviour(report_url=dlr_url(live_server, provider))  # set by SMS Traffic's support
    mid = send(client, factory, factory.entity(provider), RU_TEXT)
    processes.worker(SMSQUEUE_PUBLIC_URL=live_server)  # no beat: nothing polls
    wait_status(mid, "delivered")
    trail = events(mid)
    assert [e.status for e in trail] == ["queued", "sending", "sent", "delivered"]
    assert trail[-1].detail["source"] == "report"
    assert (sim.stats()["reports_pushed"], sim.stats()["report_failures"]) == (1, 0)


def test_smstraffic_timed_out_send_ends_unknown_outcome_and_is_never_resent(client, factory, processes, sims):
    # Taken at once, answered after 3 s; we wait 1 s. SMS Traffic cannot be asked by our id.
    hanging = sims("smstraffic", behaviour={"delay_seconds": 3, "delay_times": 1})
    other = sims()
    entity = factory.entity(
        factory.provider(hanging.url, kind="smstraffic", timeout_seconds=1), factory.provider(other.url)
    )
    mid = send(client, factory, entity)
    processes.worker()
    processes.beat()
    final = wait_final(mid, timeout=60)
    assert (final.status, final.reason) == ("failed", "unknown_outcome")
    assert [e.status for e in events(mid)] == ["queued", "sending", "failed"]
    assert len(hanging.received()) == 1
    assert hanging.stats()["requests"]["send"] == 1  # neither resent there nor on the reserve
    assert other.stats()["requests"] == {}


# --- IQSMS --------------------------------------------------------------------------------------------


def test_iqsms_delivered_from_its_status_queue(client, factory, processes, sims):
    sim = sims("iqsms", behaviour={"delivery_delay": 0.5})
    provider = factory.provider(sim.url, kind="iqsms", code="iq-main")
    mid = send(client, factory, factory.entity(provider), RU_TEXT)
    processes.worker(SMSQUEUE_STATUS_CHECK_FIRST="3600")  # polling out of the way: only the queue
    processes.beat()
    final = wait_status(mid, "delivered")
    trail = events(mid)
    assert [e.status for e in trail] == ["queued", "sending", "sent", "delivered"]
    assert trail[-1].detail["source"] == "report"
    [received] = sim.received()
    assert (received.ref, received.text) == (str(final.pk), RU_TEXT)  # clientId is our id
    assert final.provider_message_id == received.provider_id
    assert sim.stats()["requests"]["send"] == 1


def test_iqsms_delivered_by_polling(client, factory, processes, sims):
    sim = sims("iqsms", behaviour={"delivery_delay": 0.2})
    provider = factory.provider(sim.url, kind="iqsms")
    mid = send(client, factory, factory.entity(provider))
    processes.worker()  # no beat: no queue drain; this process polls
    wait_status(mid, "sent")

    def polled() -> bool:
        polling.poll_due()
        return message(mid).status == "delivered"

    wait_for(polled, 20, 0.3, "delivered by polling")
    assert events(mid)[-1].detail["source"] == "poll"


def test_iqsms_timed_out_send_is_settled_and_sent_once(client, factory, processes, sims):
    hanging = sims("iqsms", behaviour={"delay_seconds": 3, "delay_times": 1, "delivery_delay": 0.5})
    other = sims()
    entity = factory.entity(
        factory.provider(hanging.url, kind="iqsms", timeout_seconds=1), factory.provider(other.url)
    )
    mid = send(client, factory, entity)
    processes.worker()
    processes.beat()
    final = wait_status(mid, "delivered", "failed", "undelivered", timeout=40)
    assert final.status == "delivered"
    trail = events(mid)
    # Settled from the status queue by clientId (our id) while the send was unanswered: never resent.
    assert [e.status for e in trail] == ["queued", "sending", "delivered"]
    assert trail[-1].detail["source"] == "report"
    [received] = hanging.received()
    assert received.ref == str(final.pk) and final.provider_message_id == received.provider_id
    assert hanging.stats()["requests"]["send"] == 1
    assert other.stats()["requests"] == {}
