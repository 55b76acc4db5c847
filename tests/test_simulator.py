"""The provider simulator end to end over HTTP: SmscClient against it, its behaviours and bookkeeping."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_runs_as_a_process_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "smsqueue.providers.simulator", "--kind", "smsc", "--port", str(port)],
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
        answer: Any = requests.post(
            f"http://127.0.0.1:{port}/sys/balance.php", data={"apikey": "k", "fmt": 3}, timeout=2
        ).json()
        assert answer == {"balance": "10000.00"}
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
