"""The provider simulator end to end over HTTP: SmscClient against it, its behaviours and bookkeeping."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest
import requests
from wire_server import WireServer

from smsqueue.providers.base import (
    IncomingRequest,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    StatusQuery,
    TransientProviderError,
)
from smsqueue.providers.simulator import Simulator, behaviour_from_args, build_parser
from smsqueue.providers.simulator.behaviour import OPERATIONS
from smsqueue.providers.simulator.dialects import DIALECTS
from smsqueue.providers.smsc import SmscClient
from smsqueue.statuses import Status

T = TypeVar("T")
PHONE = "+79161234567"
HELLO_RU = "Привет, мир"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # Long enough that "still pending right after the send" holds on a loaded machine.
    with Simulator(kind="smsc", behaviour={"delivery_delay": 0.5}) as simulator:
        yield simulator


def client(sim: Simulator, *, timeout: float = 2.0, **settings: str) -> SmscClient:
    settings = settings or {"login": "acme", "password": "pw"}
    return SmscClient(ProviderConfig("sim", "smsc", {"base_url": sim.url, **settings}, timeout=timeout))


def sms(ref: int = 42, to: str = PHONE, text: str = HELLO_RU) -> OutgoingSMS:
    return OutgoingSMS(message_id=f"m-{ref}", ref=ref, to=to, text=text, sender="ACME", ttl_seconds=3600)


def query(ref: int = 42, to: str = PHONE) -> StatusQuery:
    return StatusQuery(provider_message_id=str(ref), to=to, ref=ref)


def eventually(probe: Callable[[], T | None], timeout: float = 3.0) -> T:
    """Poll until `probe` returns something truthy: waits on outcomes, not on fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- the happy path ---------------------------------------------------------------------------------------


def test_send_then_delivered_after_the_delay(sim: Simulator) -> None:
    smsc = client(sim)
    result = smsc.send(sms())
    assert result.provider_message_id == "42"

    first = smsc.statuses([query()])["42"]
    assert first.status is None  # handed to the operator, not yet delivered

    eventually(lambda: smsc.statuses([query()])["42"].status is Status.DELIVERED)
    assert sim.stats()["delivered"] == 1


def test_the_message_is_recorded_exactly(sim: Simulator) -> None:
    client(sim).send(sms(text=HELLO_RU))

    [message] = sim.received()
    assert (message.kind, message.ref, message.phone, message.text, message.sender) == (
        "smsc",
        "42",
        "79161234567",
        HELLO_RU,
        "ACME",
    )
    assert message.provider_id == "42"
    listed = requests.get(f"{sim.url}/_sim/messages", timeout=2).json()
    assert [(m["ref"], m["text"], m["state"]) for m in listed] == [("42", HELLO_RU, "pending")]
    assert requests.get(f"{sim.url}/_sim/messages?ref=41", timeout=2).json() == []


def test_zero_delay_delivers_at_once() -> None:
    with Simulator(kind="smsc", behaviour={"delivery_delay": 0}) as simulator:
        smsc = client(simulator)
        smsc.send(sms())
        assert smsc.statuses([query()])["42"].status is Status.DELIVERED


def test_undelivered_share_ends_messages_undelivered() -> None:
    with Simulator(kind="smsc", behaviour={"delivery_delay": 0, "undelivered_share": 1.0}) as simulator:
        smsc = client(simulator)
        smsc.send(sms())
        update = smsc.statuses([query()])["42"]
    assert (update.status, update.reason, update.provider_status) == (
        Status.UNDELIVERED,
        "provider_error:20",
        "20;err=6",
    )


def test_batched_statuses_lookup_and_balance(sim: Simulator) -> None:
    sim.set_behaviour(delivery_delay=0)
    smsc = client(sim)
    for ref, to in ((1, "+79161234501"), (2, "+79161234502"), (3, "+79161234503")):
        smsc.send(sms(ref=ref, to=to))

    asked = [query(1, "+79161234501"), query(2, "+79161234502"), query(9, "+79161234509")]
    updates = smsc.statuses(asked)

    assert set(updates) == {"1", "2"}  # 9 was never sent
    assert all(u.status is Status.DELIVERED for u in updates.values())
    assert smsc.lookup(sms(ref=3, to="+79161234503")) is not None
    assert smsc.lookup(sms(ref=3, to="+79161234504")) is None  # SMSC ids are per phone
    assert smsc.balance().amount == 10000 - 3 * 1.5


def test_cyrillic_without_charset_would_arrive_garbled(sim: Simulator) -> None:
    # SMSC reads windows-1251 unless told otherwise; the simulator does too, which is why the client
    # always sends charset=utf-8.
    requests.post(
        f"{sim.url}/sys/send.php",
        data={"login": "a", "psw": "b", "phones": PHONE, "mes": HELLO_RU, "fmt": "3"},
        timeout=2,
    )
    assert sim.received()[0].text != HELLO_RU


# --- behaviours -------------------------------------------------------------------------------------------


def test_http_500_for_the_next_two_requests(sim: Simulator) -> None:
    sim.set_behaviour(fail_http=500, fail_http_times=2)
    smsc = client(sim)

    for _ in range(2):
        with pytest.raises(TransientProviderError) as caught:
            smsc.send(sms())
        assert (caught.value.code, caught.value.may_have_sent) == ("http_500", False)
    smsc.send(sms())

    assert len(sim.received()) == 1
    assert sim.behaviour.fail_http is None  # used up


def test_behaviour_applies_only_to_the_operations_it_affects(sim: Simulator) -> None:
    sim.set_behaviour(fail_http=503, affects=["status"])
    smsc = client(sim)
    smsc.send(sms())
    with pytest.raises(TransientProviderError):
        smsc.statuses([query()])


@pytest.mark.parametrize(
    ("code", "check"),
    [
        (9, lambda e: isinstance(e, TransientProviderError) and e.may_have_sent),
        (4, lambda e: isinstance(e, TransientProviderError) and not e.may_have_sent),
        (7, lambda e: isinstance(e, PermanentProviderError) and e.number_problem),
        (2, lambda e: isinstance(e, PermanentProviderError) and e.provider_wide),
    ],
)
def test_provider_error_codes_switched_on_over_http(
    sim: Simulator, code: int, check: Callable[[Exception], bool]
) -> None:
    answer = requests.post(
        f"{sim.url}/_sim/behaviour", json={"error_code": code, "error_code_times": 1}, timeout=2
    )
    assert answer.status_code == 200
    assert answer.json()["error_code"] == code
    smsc = client(sim)

    with pytest.raises((TransientProviderError, PermanentProviderError)) as caught:
        smsc.send(sms())

    assert caught.value.code == str(code)
    assert check(caught.value)
    assert sim.received() == []
    smsc.send(sms())  # only the next request was refused
    assert sim.stats()["rejected_sends"] == 1


def test_slow_answer_times_out_but_the_message_was_taken(sim: Simulator) -> None:
    sim.set_behaviour(delay_seconds=2.0, delay_times=1)
    smsc = client(sim, timeout=0.3)

    with pytest.raises(TransientProviderError) as caught:
        smsc.send(sms())

    assert caught.value.may_have_sent is True
    found = smsc.lookup(sms())  # the product asks before anyone sends it again
    assert found is not None and found.provider_message_id == "42"


def test_credentials_are_checked_when_configured() -> None:
    with Simulator(kind="smsc", login="acme", password="right", behaviour={"delivery_delay": 0}) as simulator:
        with pytest.raises(PermanentProviderError) as caught:
            client(simulator, login="acme", password="wrong").send(sms())
        assert caught.value.provider_wide is True
        assert caught.value.code == "2"
        assert client(simulator, login="acme", password="right").send(sms()).provider_message_id == "42"
        with pytest.raises(PermanentProviderError):
            client(simulator, apikey="nope").balance()


def test_apikey_credentials() -> None:
    with Simulator(kind="smsc", apikey="K3Y") as simulator:
        assert client(simulator, apikey="K3Y").balance().currency == "RUB"
        with pytest.raises(PermanentProviderError):
            client(simulator, login="acme", password="pw").balance()


def test_delivery_reports_are_pushed_in_smsc_format() -> None:
    with WireServer() as receiver:
        receiver.respond(path="/dlr", body="OK")
        report_url = f"{receiver.url}/dlr?token=t0k"
        with Simulator(kind="smsc", behaviour={"delivery_delay": 0.1, "report_url": report_url}) as simulator:
            client(simulator).send(sms())
            pushed = eventually(lambda: receiver.requests)
            eventually(lambda: simulator.stats()["reports_pushed"] == 1)

    request = pushed[0]
    assert (request.method, request.path, request.query) == ("POST", "/dlr", {"token": ["t0k"]})
    parsed = SmscClient(ProviderConfig("sim", "smsc", {"apikey": "k"})).parse_report(
        IncomingRequest(method="POST", form=request.form)
    )
    [report] = parsed.reports
    assert (report.provider_message_id, report.ref, report.update.status) == ("42", 42, Status.DELIVERED)


def test_a_failing_report_receiver_is_tolerated() -> None:
    with WireServer() as receiver:
        receiver.respond(status=500)
        behaviour = {"delivery_delay": 0, "report_url": f"{receiver.url}/dlr"}
        with Simulator(kind="smsc", behaviour=behaviour) as simulator:
            smsc = client(simulator)
            smsc.send(sms(ref=1))
            smsc.send(sms(ref=2))
            eventually(lambda: simulator.stats()["report_failures"] == 2)
            assert smsc.statuses([query(1)])["1"].status is Status.DELIVERED


# --- bookkeeping and control ------------------------------------------------------------------------------


def test_duplicates_by_our_id_are_counted(sim: Simulator) -> None:
    smsc = client(sim)
    smsc.send(sms(ref=42))
    smsc.send(sms(ref=42))
    smsc.send(sms(ref=43))

    stats = requests.get(f"{sim.url}/_sim/stats", timeout=2).json()

    assert stats["duplicates"] == {"42": 2}
    assert stats["duplicate_refs"] == 1
    assert stats["unique_refs"] == 2
    assert stats["messages"] == 3
    assert stats["requests"] == {"send": 3}


def test_reset_forgets_messages_and_restores_the_starting_behaviour(sim: Simulator) -> None:
    client(sim).send(sms())
    sim.set_behaviour(fail_http=500)

    assert requests.post(f"{sim.url}/_sim/reset", timeout=2).json() == {"ok": True}

    assert sim.received() == []
    assert sim.behaviour.fail_http is None
    assert sim.behaviour.delivery_delay == 0.5
    assert sim.stats()["requests"] == {}


def test_behaviour_endpoint_refuses_unknown_keys_and_bad_values(sim: Simulator) -> None:
    bad_key = requests.post(f"{sim.url}/_sim/behaviour", json={"explode": True}, timeout=2)
    bad_value = requests.post(f"{sim.url}/_sim/behaviour", json={"undelivered_share": 2}, timeout=2)
    assert (bad_key.status_code, bad_value.status_code) == (400, 400)
    assert "explode" in bad_key.json()["error"]
    current = requests.get(f"{sim.url}/_sim/behaviour", timeout=2).json()
    assert current["delivery_delay"] == 0.5 and current["affects"] == ["send"]


def test_unknown_paths_are_404(sim: Simulator) -> None:
    assert requests.get(f"{sim.url}/nope", timeout=2).status_code == 404
    assert requests.get(f"{sim.url}/_sim/nope", timeout=2).status_code == 404


def test_keep_alive_connection_serves_many_requests(sim: Simulator) -> None:
    with requests.Session() as session:
        for ref in range(1, 51):
            answer = session.post(
                f"{sim.url}/sys/send.php",
                data={"login": "a", "psw": "b", "phones": PHONE, "mes": "hi", "id": ref, "fmt": 3},
                timeout=2,
            )
            assert answer.json()["id"] == ref
            assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert len(sim.received()) == 50


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("Ж" * 70, 1),
        ("Ж" * 71, 2),
        ("{" * 80, 1),
        ("a" * 152 + "€" + "a" * 152, 3),
    ],
)
def test_parts_are_counted_as_the_product_counts_them(sim: Simulator, text: str, parts: int) -> None:
    # The answer's `cnt` and the recorded parts follow smsqueue.segments (an escape pair is never split).
    answer = requests.post(
        f"{sim.url}/sys/send.php",
        data={"login": "a", "psw": "b", "phones": PHONE, "mes": text, "charset": "utf-8", "fmt": 3},
        timeout=2,
    ).json()
    assert (answer["cnt"], sim.received()[0].parts) == (parts, parts)


# --- other dialects (their clients are tested elsewhere; these check the simulator's wire shapes) -------


def test_smsru_dialect_send_status_balance_and_report() -> None:
    with (
        WireServer() as receiver,
        Simulator(
            kind="smsru", apikey="API", behaviour={"delivery_delay": 0, "report_url": f"{receiver.url}/dlr"}
        ) as simulator,
    ):
        receiver.respond(body="100")
        sent = requests.post(
            f"{simulator.url}/sms/send",
            data={"api_id": "API", "to": "79161234567", "msg": HELLO_RU, "json": 1},
            timeout=2,
        ).json()
        sms_id = sent["sms"]["79161234567"]["sms_id"]
        assert (sent["status"], sent["status_code"], sent["sms"]["79161234567"]["status_code"]) == (
            "OK",
            100,
            100,
        )
        status = requests.post(
            f"{simulator.url}/sms/status", data={"api_id": "API", "sms_id": sms_id, "json": 1}, timeout=2
        ).json()
        assert status["sms"][sms_id]["status_code"] == 103
        balance = requests.post(f"{simulator.url}/my/balance", data={"api_id": "API", "json": 1}, timeout=2)
        assert balance.json()["balance"] == 10000 - 1.5
        refused = requests.post(f"{simulator.url}/my/balance", data={"api_id": "bad", "json": 1}, timeout=2)
        assert (refused.json()["status"], refused.json()["status_code"]) == ("ERROR", 200)
        [report] = eventually(lambda: receiver.requests)
    [entry] = report.form["data[0]"]
    assert entry.startswith(f"sms_status\n{sms_id}\n103\n")
    assert report.form["hash"] == [hashlib.sha256(("API" + entry).encode()).hexdigest()]
    assert simulator.received()[0].text == HELLO_RU


def test_smsaero_dialect_send_status_balance_and_auth() -> None:
    auth = "Basic " + base64.b64encode(b"me@example.com:KEY").decode()
    with Simulator(
        kind="smsaero", login="me@example.com", apikey="KEY", behaviour={"delivery_delay": 0}
    ) as sim:
        sent = requests.post(
            f"{sim.url}/v2/sms/send",
            json={"number": "79161234567", "text": HELLO_RU, "sign": "ACME"},
            headers={"Authorization": auth},
            timeout=2,
        ).json()
        assert sent["success"] is True and sent["data"]["status"] == 0
        status = requests.get(
            f"{sim.url}/v2/sms/status",
            params={"id": sent["data"]["id"]},
            headers={"Authorization": auth},
            timeout=2,
        ).json()
        assert (status["data"]["status"], status["data"]["extendStatus"]) == (1, "delivery success")
        balance = requests.get(f"{sim.url}/v2/balance", headers={"Authorization": auth}, timeout=2).json()
        assert balance == {"success": True, "data": {"balance": 10000 - 1.5}, "message": None}
        refused = requests.get(f"{sim.url}/v2/balance", auth=("me@example.com", "bad"), timeout=2)
        assert refused.status_code == 401
    assert sim.received()[0].text == HELLO_RU


def traffic_post(url: str, **form: str) -> ET.Element:
    answer = requests.post(f"{url}/multi.php", data={"login": "acme", "password": "pw", **form}, timeout=2)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/xml")
    return ET.fromstring(answer.content)


def test_smstraffic_dialect_send_binds_push_ids_per_segment_and_shares_the_reserve() -> None:
    with Simulator(kind="smstraffic", behaviour={"delivery_delay": 0}) as sim:
        lines = f"7:79161234567 {HELLO_RU}\n8:79161234568 {'Ж' * 71}"
        sent = traffic_post(
            sim.url, message=lines, individual_messages="1", with_push_id="1", rus="5", want_sms_ids="1"
        )
        assert (sent.findtext("result"), sent.findtext("code")) == ("OK", "0")
        infos = [
            (i.findtext("push_id"), i.findtext("phone"), i.findtext("sms_id"))
            for i in sent.iter("message_info")
        ]
        [first, second] = [m.provider_id for m in sim.received()]
        assert infos == [
            ("7", "79161234567", f"{first}001"),
            ("8", "79161234568", f"{second}001"),
            ("8", "79161234568", f"{second}002"),  # one message_info per segment
        ]
        assert [(m.ref, m.text, m.parts) for m in sim.received()] == [("7", HELLO_RU, 1), ("8", "Ж" * 71, 2)]
        # the reserve path is the same account: it knows what the main one took
        status = traffic_post(f"{sim.url}/reserve", operation="status", sms_id=f"{first}001,{second}002")
        assert [(e.findtext("sms_id"), e.findtext("status")) for e in status.iter("sms")] == [
            (f"{first}001", "Delivered"),
            (f"{second}002", "Delivered"),
        ]
        single = traffic_post(sim.url, operation="status", sms_id=f"{first}001")
        assert (single.findtext("sms_id"), single.findtext("status")) == (f"{first}001", "Delivered")
        unknown = traffic_post(sim.url, operation="status", sms_id=f"{first}001,{second}003")
        assert (unknown.findtext("result"), unknown.findtext("description")) == ("ERROR", "no such message")
        assert traffic_post(sim.url, operation="account").findtext("account") == f"{10000 - 3 * 1.5:.2f}"
        assert sim.stats()["requests"] == {"send": 1, "status": 3, "balance": 1}
        assert sim.stats()["reserve_requests"] == {"status": 1}


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"phones": "79161234567,7916"}, "423"),  # one bad number refuses the whole request
        ({"phones": "79990000000"}, "423"),  # a number the behaviour calls bad
        ({"phones": "79161234567", "originator": "12345"}, "436"),  # numeric sender to a Russian number
        ({"phones": ",".join(f"7916123{i:04d}" for i in range(7)), "want_sms_ids": "1", "gap": "60"}, "418"),
        ({"phones": "79161234567", "message": ""}, "400"),
        ({"phones": "79161234567", "password": "wrong"}, "411"),
    ],
)
def test_smstraffic_dialect_refusals_send_nothing(form: dict[str, str], code: str) -> None:
    with Simulator(
        kind="smstraffic", password="pw", login="acme", behaviour={"bad_numbers": ["+7 999 000-00-00"]}
    ) as sim:
        answer = traffic_post(sim.url, **{"message": "hi", "rus": "5", **form})
        assert (answer.findtext("result"), answer.findtext("code")) == ("ERROR", code)
        assert sim.received() == []


def test_smstraffic_dialect_no_funds_and_transliteration_without_rus_5() -> None:
    with Simulator(kind="smstraffic", behaviour={"balance": 3.0}) as sim:  # two SMS
        sent = traffic_post(sim.url, phones="79161234567", message=HELLO_RU)  # rus left out: 0
        assert sent.findtext("result") == "OK" and sent.find("message_infos") is None  # no want_sms_ids
        assert sim.received()[0].text != HELLO_RU  # UTF-8 read as windows-1251, then transliterated
        body = urlencode(
            {"login": "a", "password": "b", "phones": "79161234568", "message": HELLO_RU}, encoding="cp1251"
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        requests.post(f"{sim.url}/multi.php", data=body, headers=headers, timeout=2)
        assert sim.received()[1].text == "Privet, mir"  # what rus=0 puts on the phone
        refused = traffic_post(sim.url, phones="79161234567", message="hi", rus="5")
        assert (refused.findtext("code"), refused.findtext("description")) == ("415", "Not enough money")


def test_smstraffic_dialect_pushes_one_form_report_per_segment() -> None:
    with WireServer() as receiver:
        receiver.respond(body="OK")
        behaviour = {"delivery_delay": 0, "report_url": f"{receiver.url}/dlr", "undelivered_share": 1.0}
        with Simulator(kind="smstraffic", behaviour=behaviour) as sim:
            traffic_post(sim.url, phones="79161234567", message="Ж" * 71, rus="5")
            pushed = eventually(lambda: len(receiver.requests) == 2 and receiver.requests)
    base = sim.received()[0].provider_id
    assert [(r.form["sms_id"], r.form["status"]) for r in pushed] == [
        ([f"{base}001"], ["Non Delivered"]),
        ([f"{base}002"], ["Non Delivered"]),
    ]
    assert len(pushed[0].form["delivery_date"][0]) == len("2026-12-02 21:10:00")


def iqsms_post(url: str, method: str, **body: Any) -> Any:
    answer = requests.post(
        f"{url}/messages/v2/{method}.json", json={"login": "acme", "password": "pw", **body}, timeout=2
    )
    assert answer.status_code == 200
    return answer.json()


def test_iqsms_dialect_send_status_queue_and_balance() -> None:
    with Simulator(kind="iqsms", behaviour={"delivery_delay": 0.2}) as sim:
        messages = [
            {"clientId": "1", "phone": "79161234561", "text": HELLO_RU, "sender": "ACME"},
            {"clientId": "2", "phone": "7916", "text": "x"},
            {"clientId": "3", "phone": "79161234563", "text": ""},
            {"clientId": "4", "phone": "79161234564", "text": "x", "sender": "TWELVECHARS!"},
            {"clientId": "5", "phone": "79161234565", "text": "Ж" * 71},
        ]
        sent = iqsms_post(sim.url, "send", statusQueueName="queue1", messages=messages)
        assert sent["status"] == "ok"
        assert [(m["clientId"], m["status"]) for m in sent["messages"]] == [
            ("1", "accepted"),
            ("2", "invalid mobile phone"),
            ("3", "text is empty"),
            ("4", "sender address invalid"),
            ("5", "accepted"),
        ]
        first = sent["messages"][0]["smscId"]
        assert isinstance(first, int) and sent["messages"][1]["smscId"] is None
        assert [(m.ref, m.sender, m.parts) for m in sim.received()] == [("1", "ACME", 1), ("5", None, 2)]
        assert iqsms_post(sim.url, "statusQueue", statusQueueName="queue1") == {
            "status": "error",
            "description": "queue is empty",  # nothing is final yet
        }
        status = iqsms_post(
            sim.url, "status", messages=[{"clientId": "1"}, {"smscId": first}, {"clientId": "9"}]
        )
        assert [m["status"] for m in status["messages"]] == ["smsc submit", "smsc submit", "incorrect id"]
        eventually(lambda: sim.stats()["pending"] == 0)
        popped = iqsms_post(sim.url, "statusQueue", statusQueueName="queue1", statusQueueLimit=1)
        assert popped["messages"] == [{"clientId": "1", "smscId": first, "status": "delivered"}]
        assert [
            m["clientId"] for m in iqsms_post(sim.url, "statusQueue", statusQueueName="queue1")["messages"]
        ] == ["5"]
        assert iqsms_post(sim.url, "statusQueue", statusQueueName="queue1")["description"] == "queue is empty"
        assert iqsms_post(sim.url, "statusQueue", statusQueueName="other")["description"] == "queue is empty"
        assert (
            iqsms_post(sim.url, "statusQueue", statusQueueName="a-b")["description"]
            == "invalid status queue name"
        )
        balance = iqsms_post(sim.url, "balance")
        assert balance == {
            "status": "ok",
            "description": None,
            "balance": [{"type": "RUB", "balance": 10000 - 3 * 1.5, "credit": 0}],
        }
        sim.reset()
        assert (
            iqsms_post(sim.url, "status", messages=[{"clientId": "1"}])["messages"][0]["status"]
            == "incorrect id"
        )


def test_iqsms_dialect_request_errors() -> None:
    with Simulator(kind="iqsms", login="acme", password="pw", behaviour={"balance": 1.0}) as sim:
        one = [{"clientId": "1", "phone": "79161234561", "text": "x"}]
        assert iqsms_post(sim.url, "balance", password="bad")["description"] == "error authorization"
        assert (
            iqsms_post(sim.url, "send", messages=one, statusQueueName="x")["description"]
            == "invalid status queue name"
        )
        assert iqsms_post(sim.url, "send", messages=one)["description"] == "not enough balance"
        sim.set_behaviour(error_code="error authorization", error_code_times=1, affects=["balance"])
        assert iqsms_post(sim.url, "balance")["description"] == "error authorization"
        assert sim.received() == []


# Requests that reach an operation beyond a plain POST to each route: SMS Traffic has one path for all.
EXTRA_PROBES = {
    "smstraffic": [("/multi.php", {"operation": "status"}), ("/multi.php", {"operation": "account"})],
}


@pytest.mark.parametrize("kind", sorted(DIALECTS))
def test_every_registered_dialect_routes_the_three_operations(kind: str) -> None:
    assert set(DIALECTS[kind].routes.values()) <= set(OPERATIONS)
    probes = [(path, {}) for path in DIALECTS[kind].routes] + EXTRA_PROBES.get(kind, [])
    with Simulator(kind=kind) as simulator:
        for path, form in probes:
            requests.post(f"{simulator.url}{path}", data=form, timeout=2)
        counts = simulator.stats()["requests"]
    assert set(counts) == set(OPERATIONS)
    assert sum(counts.values()) == len(probes)


def test_the_simulator_imports_no_database_celery_or_flask() -> None:
    probe = (
        "import sys, smsqueue.providers.simulator\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(roots & {'sqlalchemy', 'celery', 'kombu', 'flask', 'redis'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


# --- command line -----------------------------------------------------------------------------------------


def test_cli_flags_become_behaviour() -> None:
    args = build_parser().parse_args(
        ["--kind", "smsc", "--fail-http", "500", "--fail-http-times", "3", "--error-code", "9",
         "--delivery-delay", "0", "--report-url", "http://127.0.0.1:1/dlr", "--affects", "send", "status"]
    )  # fmt: skip
    behaviour = behaviour_from_args(args)
    assert (behaviour.fail_http, behaviour.fail_http_times, behaviour.error_code) == (500, 3, 9)
    assert behaviour.delivery_delay == 0
    assert behaviour.affects == ("send", "status")
    assert behaviour.report_url == "http://127.0.0.1:1/dlr"
    assert behaviour.endpoints == ("main", "reserve") and behaviour.bad_numbers == ()


def test_cli_kinds_endpoints_and_bad_numbers() -> None:
    args = build_parser().parse_args(
        [
            "--kind",
            "smstraffic",
            "--error-code",
            "1000",
            "--endpoints",
            "main",
            "--bad-numbers",
            "+79990000000",
        ]
    )
    behaviour = behaviour_from_args(args)
    assert (args.kind, behaviour.error_code, behaviour.endpoints) == ("smstraffic", 1000, ("main",))
    assert behaviour.bad_numbers == ("79990000000",)
    assert build_parser().parse_args(["--kind", "iqsms"]).kind == "iqsms"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--endpoints", "elsewhere"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


BALANCE_PROBES: dict[str, tuple[str, dict[str, Any], Callable[[requests.Response], Any]]] = {
    "smsc": ("/sys/balance.php", {"data": {"apikey": "k", "fmt": 3}}, lambda r: r.json()["balance"]),
    "smstraffic": (
        "/reserve/multi.php",
        {"data": {"login": "a", "password": "b", "operation": "account"}},
        lambda r: ET.fromstring(r.content).findtext("account"),
    ),
    "iqsms": (
        "/messages/v2/balance.json",
        {"json": {"login": "a", "password": "b"}},
        lambda r: f"{r.json()['balance'][0]['balance']:.2f}",
    ),
}


@pytest.mark.parametrize("kind", sorted(BALANCE_PROBES))
def test_runs_as_a_process_and_stops_on_sigterm(kind: str) -> None:
    path, body, read = BALANCE_PROBES[kind]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "smsqueue.providers.simulator", "--kind", kind, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        assert f"({kind})" in line
        answer = requests.post(f"http://127.0.0.1:{port}{path}", timeout=2, **body)
        assert read(answer) == "10000.00"
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
