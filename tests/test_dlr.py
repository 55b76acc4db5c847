"""Delivery reports pushed by providers, in-process: the callback endpoint (token, parsing, each
provider's answer, the hand-over to the task) and the matching (by the provider's id, by our ref while
`sending`, kept until the send is recorded), with the sender run in this process against the simulator.
The same with real worker processes is in test_provider_pipeline.py."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from conftest import wait_for
from sqlalchemy import func, select
from wire_server import WireServer

from smsqueue import links, recording, reports, sending
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.messages import Followups
from smsqueue.models import Message, MessageEvent
from smsqueue.models.reports import EarlyReport
from smsqueue.providers.base import SendResult, TransientProviderError
from smsqueue.providers.simulator import Simulator
from smsqueue.queues import Tasks
from smsqueue.statuses import Status
from smsqueue.tasks import reports as report_tasks
from smsqueue.tasks.celery_app import app as celery_app

PHONE = "+79161234567"


# --- helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def handed_over(monkeypatch) -> list[tuple[int, list[dict[str, Any]]]]:
    """Reports handed to the task are applied at once, in this process (the broker's part is tested in
    test_reports_go_to_the_status_queue_without_the_token)."""
    calls: list[tuple[int, list[dict[str, Any]]]] = []

    def send_task(name, args, **options):
        assert name == Tasks.PROCESS_REPORTS and options["queue"] == "status"
        calls.append(args)
        report_tasks.process(*args)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return calls


def dlr_url(provider, token: str | None = None) -> str:
    return f"/api/v1/providers/{provider.code}/dlr?token={token or provider.plain_callback_token}"


def post_message(client, factory, entity) -> str:
    r = client.post("/api/v1/messages", json={"to": PHONE, "text": "hi"}, headers=factory.headers(entity))
    assert r.status_code == 202, r.json
    return r.json["id"]


def row(mid: str) -> Any:
    with transaction() as conn:
        return conn.execute(select(Message.__table__).where(Message.id == uuid.UUID(mid))).one()


def events(mid: str) -> list[tuple[str, dict | None]]:
    with transaction() as conn:
        rows = conn.execute(
            select(MessageEvent.status, MessageEvent.detail)
            .where(MessageEvent.message_pk == row(mid).pk)
            .order_by(MessageEvent.seq)
        )
        return [(r.status, r.detail) for r in rows]


def statuses(mid: str) -> list[str]:
    return [status for status, _ in events(mid)]


def early_count() -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(EarlyReport.__table__)).scalar_one()


def send_in_background(pk: int) -> threading.Thread:
    """The send task's work in a thread, so a report can come while its provider call waits."""
    thread = threading.Thread(target=sending.process, args=([pk],), daemon=True)
    thread.start()
    return thread


def smsru_report(sms_id: str, code: int, api_id: str | None = None) -> dict[str, str]:
    line = f"sms_status\n{sms_id}\n{code}\n{int(time.time())}"
    form = {"data[0]": line}
    if api_id is not None:
        form["hash"] = hashlib.sha256((api_id + line).encode()).hexdigest()
    return form


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    assert response.json["code"] == code
    return response.json


# --- the endpoint -------------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_and_an_unknown_provider_are_403_alike(client, factory, handed_over):
    provider = factory.provider()
    form = {"id": "1", "phone": "79161234567", "status": "1"}
    wrong = client.post(dlr_url(provider, "x" * 32), data=form)
    missing = client.post(f"/api/v1/providers/{provider.code}/dlr", data=form)
    unknown = client.post(f"/api/v1/providers/nope/dlr?token={provider.plain_callback_token}", data=form)
    bodies = [assert_problem(r, 403, "forbidden") for r in (wrong, missing, unknown)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert handed_over == []
    # No API key is needed; an API key is not a token.
    assert client.post(dlr_url(provider), data=form).status_code == 200
    admin = factory.headers()
    assert_problem(
        client.post(f"/api/v1/providers/{provider.code}/dlr", data=form, headers=admin), 403, "forbidden"
    )


def test_smsc_report_delivers_a_sent_message_and_a_second_report_changes_nothing(
    client, factory, handed_over
):
    with Simulator(kind="smsc", behaviour={"delivery_delay": 60}) as sim:
        provider = factory.provider(sim.url)
        mid = post_message(client, factory, factory.entity(provider))
        sending.process([row(mid).pk])
    ref = str(row(mid).pk)
    assert row(mid).status == "sent" and row(mid).provider_message_id == ref
    r = client.post(dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "1", "err": "0"})
    assert (r.status_code, r.data, r.content_type) == (200, b"OK", "text/plain; charset=utf-8")
    item = {"id": ref, "ref": int(ref), "status": "delivered", "reason": None, "provider_status": "1"}
    assert handed_over == [(provider.id, [item])]
    assert statuses(mid) == ["queued", "sending", "sent", "delivered"]
    assert events(mid)[-1][1] == {"source": "report", "provider_status": "1"}
    # A later report (or the same one again) never moves a final message.
    r = client.post(dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "20", "err": "6"})
    assert r.status_code == 200
    client.post(dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "1"})
    assert statuses(mid) == ["queued", "sending", "sent", "delivered"]
    assert row(mid).status == "delivered" and row(mid).reason is None


def test_smsc_report_before_the_send_answer_finds_the_message_by_our_ref(client, factory, handed_over):
    # SMSC takes the message at once but answers 1.5 s late: its report comes while we are `sending`.
    with Simulator(kind="smsc", behaviour={"delay_seconds": 1.5, "delivery_delay": 60}) as sim:
        provider = factory.provider(sim.url)
        mid = post_message(client, factory, factory.entity(provider))
        thread = send_in_background(row(mid).pk)
        wait_for(lambda: sim.received(), 5, what="SMSC to have it")
        assert row(mid).status == "sending"
        ref = sim.received()[0].ref
        r = client.post(
            dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "20", "err": "6"}
        )
        assert r.status_code == 200
        assert row(mid).status == "undelivered" and row(mid).provider_message_id == ref
        thread.join(10)
    assert not thread.is_alive()
    final = row(mid)
    assert (final.status, final.reason, final.provider_message_id) == (
        "undelivered",
        "provider_error:20",
        ref,
    )
    assert statuses(mid) == ["queued", "sending", "undelivered"]
    assert early_count() == 0


@pytest.mark.parametrize("kind", ["smsru", "smsaero"])
def test_report_before_the_send_answer_is_kept_and_applied_when_sent_is_recorded(
    client, factory, handed_over, kind
):
    apikey = "api-key" if kind == "smsru" else None  # SMS.ru's simulator then signs its reports
    with Simulator(kind=kind, apikey=apikey, behaviour={"delay_seconds": 1.5, "delivery_delay": 60}) as sim:
        base_url = sim.url + "/v2" if kind == "smsaero" else sim.url
        settings = {"base_url": base_url, "api_id": "api-key"} if kind == "smsru" else None
        provider = factory.provider(base_url, kind=kind, settings=settings)
        mid = post_message(client, factory, factory.entity(provider))
        thread = send_in_background(row(mid).pk)
        wait_for(lambda: sim.received(), 5, what="the provider to have it")
        provider_id = sim.received()[0].provider_id
        if kind == "smsru":
            r = client.post(dlr_url(provider), data=smsru_report(provider_id, 103, "api-key"))
            assert (r.data, r.content_type) == (b"100", "text/plain; charset=utf-8")
        else:
            r = client.post(dlr_url(provider), json={"id": int(provider_id), "status": 1})
            assert r.data == b"OK"
        assert r.status_code == 200
        assert row(mid).status == "sending" and early_count() == 1
        thread.join(10)
    assert not thread.is_alive()
    final = row(mid)
    assert (final.status, final.provider_message_id) == ("delivered", provider_id)
    assert statuses(mid) == ["queued", "sending", "sent", "delivered"]
    assert events(mid)[-1][1]["source"] == "report"
    assert early_count() == 0


def test_smsaero_report_by_get_with_query_fields(client, factory, handed_over):
    with Simulator(kind="smsaero", behaviour={"delivery_delay": 60}) as sim:
        provider = factory.provider(sim.url + "/v2", kind="smsaero")
        mid = post_message(client, factory, factory.entity(provider))
        sending.process([row(mid).pk])
    pmid = row(mid).provider_message_id
    r = client.get(dlr_url(provider) + f"&id={pmid}&status=2&extendStatus=delivery+failure")
    assert (r.status_code, r.data) == (200, b"OK")
    assert (row(mid).status, row(mid).reason) == ("undelivered", "provider_error:2")


def test_smsru_report_hash_is_checked_when_sent(client, factory, handed_over):
    provider = factory.provider("http://127.0.0.1:9", kind="smsru", settings={"api_id": "the-api-id"})
    body = assert_problem(
        client.post(dlr_url(provider), data=smsru_report("000-1", 103, "another")), 400, "bad_json"
    )
    assert "hash" in body["detail"]
    assert handed_over == []
    assert client.post(dlr_url(provider), data=smsru_report("000-1", 103, "the-api-id")).data == b"100"
    assert client.post(dlr_url(provider), data=smsru_report("000-2", 103)).data == b"100"  # no hash sent
    assert [items[0]["id"] for _, items in handed_over] == ["000-1", "000-2"]


def test_http_json_reports_a_bad_body_and_a_long_reason(client, factory, handed_over):
    with WireServer() as wire:
        wire.respond(json={"data": {"id": "abc-1"}}, path="/send")
        provider = factory.provider(
            wire.url, kind="http_json", settings={"url": wire.url + "/send", "id_path": "data.id"}
        )
        mid = post_message(client, factory, factory.entity(provider))
        sending.process([row(mid).pk])
    assert row(mid).provider_message_id == "abc-1"
    bad = client.post(dlr_url(provider), json={"id": "abc-1", "status": "teleported"})
    assert_problem(bad, 400, "bad_json")
    assert_problem(
        client.post(dlr_url(provider), data=b"\xff\xfe", content_type="application/json"), 400, "bad_json"
    )
    reason = "no such subscriber in the home location register of the operator, try later " * 2
    r = client.post(dlr_url(provider), json=[{"id": "abc-1", "status": "failed", "reason": reason}])
    assert (r.status_code, r.json) == (200, {"ok": True})
    final = row(mid)
    assert final.status == "failed"
    assert final.reason == "provider_error:" + reason[:49] and len(final.reason) == 64


def test_events_that_are_not_reports_and_unknown_ids_are_acknowledged_and_ignored(
    client, factory, handed_over
):
    smsc = factory.provider()
    # SMSC posts incoming messages to the same handler: no status, nothing to do.
    r = client.post(dlr_url(smsc), data={"id": "5", "phone": "79161234567", "mes": "incoming text"})
    assert (r.status_code, r.data, handed_over) == (200, b"OK", [])
    r = client.post(dlr_url(smsc), data={"id": "999999", "phone": "79161234567", "status": "1"})
    assert r.status_code == 200
    assert report_tasks.process(*handed_over[-1]).ignored == 1
    # A report that says "in progress" changes nothing either.
    assert (
        client.post(dlr_url(smsc), data={"id": "999999", "phone": "7916", "status": "0"}).status_code == 200
    )
    assert report_tasks.process(*handed_over[-1]).ignored == 1
    # SMS.ru ids we never learnt are kept a while (the send may be about to record them), then purged.
    smsru = factory.provider(kind="smsru")
    assert client.post(dlr_url(smsru), data=smsru_report("000000-42", 103)).data == b"100"
    assert early_count() == 1
    with transaction() as conn:
        assert reports.purge_early(conn, now()) == 0
        assert reports.purge_early(conn, now() + reports.EARLY_REPORT_TTL + timedelta(seconds=1)) == 1
    assert early_count() == 0


def test_with_the_broker_down_the_reports_are_applied_in_the_request(client, factory, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_app, "send_task", broken)
    with Simulator(kind="smsc", behaviour={"delivery_delay": 60}) as sim:
        provider = factory.provider(sim.url)
        mid = post_message(client, factory, factory.entity(provider))
        sending.process([row(mid).pk])
    ref = row(mid).provider_message_id
    r = client.post(dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "1"})
    assert (r.status_code, r.data) == (200, b"OK")
    assert row(mid).status == "delivered"


def test_reports_go_to_the_status_queue_without_the_token(client, factory, test_env):
    broker = redis.Redis.from_url(test_env["CELERY_BROKER_URL"])
    broker.delete("status")
    provider = factory.provider(kind="smsru")
    r = client.post(dlr_url(provider), data=smsru_report("000000-7", 103))
    assert r.status_code == 200
    raw = wait_for(lambda: broker.lrange("status", 0, -1), 5, what="the task message")
    [envelope] = [json.loads(item) for item in raw]
    assert envelope["headers"]["task"] == "smsqueue.process_reports"
    args = json.loads(base64.b64decode(envelope["body"]))[0]
    item = {"id": "000000-7", "ref": None, "status": "delivered", "reason": None, "provider_status": "103"}
    assert args == [provider.id, [item]]
    assert provider.plain_callback_token.encode() not in b"".join(raw)
    broker.delete("status")


# --- the race between a report and the send task recording the id (PostgreSQL) ------------------------


def test_a_report_waits_for_a_send_recording_its_id_and_then_applies(client, factory):
    """The send task has stored the id but not committed when the report comes: the report must not be
    kept where the committed send will never look (it waits on the lock, then finds the message)."""
    provider = factory.provider(kind="smsru")
    mid = post_message(client, factory, factory.entity(provider))
    at = now()
    with transaction() as conn:
        sending.claim(conn, [row(mid).pk], at, Followups())
    claimed = row(mid)
    done = threading.Event()
    outcome: list[reports.ReportCounts] = []

    def report() -> None:
        item = reports.ReportItem("000000-9", None, Status.DELIVERED, None, "103")
        outcome.append(reports.apply_reports(provider.id, "smsru", [item]))
        done.set()

    with transaction() as conn:
        recording.record_sent(conn, claimed, provider, SendResult("000000-9"), now())
        thread = threading.Thread(target=report, daemon=True)
        thread.start()
        # It cannot finish while the send's transaction holds the lock on this id.
        assert not done.wait(1.0)
    thread.join(10)
    assert outcome and (outcome[0].applied, outcome[0].kept) == (1, 0)
    assert statuses(mid) == ["queued", "sending", "sent", "delivered"]
    assert early_count() == 0


def test_a_report_during_the_call_keeps_the_message_counted_when_the_call_then_fails(
    client, factory, handed_over
):
    """SMSC reported delivery (found by our ref) while our call was out, then the call itself failed:
    the message stays delivered and stays counted against the 230-FZ limits."""
    provider = factory.provider()
    entity = factory.entity(provider)
    mid = post_message(client, factory, entity)
    with transaction() as conn:
        [claimed] = sending.claim(conn, [row(mid).pk], now(), Followups())
    assert row(mid).fz_counted_on is not None
    ref = str(row(mid).pk)
    assert (
        client.post(dlr_url(provider), data={"id": ref, "phone": "79161234567", "status": "1"}).data == b"OK"
    )
    with transaction() as conn:
        ctx = links.load_context(conn, [entity.id])
        error = TransientProviderError("HTTP 502", code="http_502")
        recording.record_failure(conn, claimed.message, claimed.link, 1, error, ctx, now(), Followups())
    assert statuses(mid) == ["queued", "sending", "delivered"]
    assert row(mid).fz_counted_on is not None
