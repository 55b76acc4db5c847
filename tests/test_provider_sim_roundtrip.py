"""The real SmsTrafficClient and IqsmsClient against the running simulator: what one sends, the other
understands, end to end over HTTP (the wire tests check each side against fixed answers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TypeVar

import pytest
from wire_server import WireServer

from smsqueue.providers.base import (
    IncomingRequest,
    LookupNotSupported,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    Report,
    SendResult,
    StatusQuery,
    TransientProviderError,
)
from smsqueue.providers.iqsms import IqsmsClient, drain_status_queue
from smsqueue.providers.simulator import Simulator
from smsqueue.providers.smstraffic import SmsTrafficClient
from smsqueue.statuses import Status

T = TypeVar("T")
LOGIN, PASSWORD = "acme", "Pa55-word"
HELLO_RU = "Привет, мир"
LONG_RU = "Ж" * 150  # three UCS-2 segments
BAD = "+79990000000"  # a number the simulator is told to refuse


def eventually(probe: Callable[[], T | None], timeout: float = 3.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def sms(ref: int, to: str = "+79161234567", text: str = HELLO_RU, sender: str | None = "ACME") -> OutgoingSMS:
    return OutgoingSMS(message_id=f"m-{ref}", ref=ref, to=to, text=text, sender=sender)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def started(kind: str, **behaviour: object) -> Simulator:
    options = {"delivery_delay": 0.3, "bad_numbers": [BAD], **behaviour}
    return Simulator(kind=kind, login=LOGIN, password=PASSWORD, behaviour=options).start()


# --- SMS Traffic ------------------------------------------------------------------------------------------


@pytest.fixture
def traffic_sim() -> Iterator[Simulator]:
    sim = started("smstraffic")
    yield sim
    sim.stop()


def traffic(
    sim: Simulator,
    *,
    main: str | None = None,
    reserve: str | None = None,
    timeout: float = 2.0,
    **settings: str,
) -> SmsTrafficClient:
    config = {
        "base_url": main or sim.url,
        "reserve_url": reserve or f"{sim.url}/reserve",
        "login": LOGIN,
        "password": PASSWORD,
        **settings,
    }
    return SmsTrafficClient(ProviderConfig("traffic-main", "smstraffic", config, timeout))


def traffic_status(client: SmsTrafficClient, result: SendResult, ref: int) -> Status | None:
    query = StatusQuery(result.provider_message_id, "+79161234567", ref)
    update = client.statuses([query]).get(result.provider_message_id)
    return update.status if update else None


def test_traffic_cyrillic_send_then_delivered_by_polling(traffic_sim: Simulator) -> None:
    client = traffic(traffic_sim)

    result = client.send(sms(42))

    [message] = traffic_sim.received()
    assert (message.ref, message.text, message.sender, message.parts) == ("42", HELLO_RU, "ACME", 1)
    assert result.provider_message_id == f"{message.provider_id}001"
    assert traffic_status(client, result, 42) is None  # Buffered SMSC
    eventually(lambda: traffic_status(client, result, 42) is Status.DELIVERED)


def test_traffic_segments_are_one_message_delivered_when_every_segment_is(traffic_sim: Simulator) -> None:
    client = traffic(traffic_sim)

    result = client.send(sms(7, text=LONG_RU))

    [message] = traffic_sim.received()
    assert message.parts == 3
    assert result.provider_message_id == ",".join(f"{message.provider_id}00{k}" for k in (1, 2, 3))
    eventually(lambda: traffic_status(client, result, 7) is Status.DELIVERED)
    assert client.balance().amount == Decimal("10000") - Decimal("4.5")


def test_traffic_batch_with_one_bad_number_and_statuses_in_one_call(traffic_sim: Simulator) -> None:
    traffic_sim.set_behaviour(delivery_delay=0)
    client = traffic(traffic_sim)
    batch = [sms(1, "+79161234561"), sms(2, BAD), sms(3, "+79161234563", LONG_RU)]

    results = client.send_many(batch)

    bad = results[1]
    assert isinstance(bad, PermanentProviderError) and bad.number_problem
    assert bad.reason == "provider_error:423"
    assert [m.ref for m in traffic_sim.received()] == ["1", "3"]  # each good one once
    good = [r for r in results if isinstance(r, SendResult)]
    queries = [StatusQuery(r.provider_message_id, "+7916", ref) for r, ref in zip(good, (1, 3), strict=True)]
    asked = traffic_sim.stats()["requests"].get("status", 0)
    found = client.statuses(queries)
    assert {k: v.status for k, v in found.items()} == dict.fromkeys(
        (r.provider_message_id for r in good), Status.DELIVERED
    )
    assert traffic_sim.stats()["requests"]["status"] == asked + 1  # both, every segment, in one call
    # an id SMS Traffic no longer knows refuses the batch: asked again one by one, and left out
    with_gone = client.statuses([*queries, StatusQuery("999999001", "+7916", 9)])
    assert set(with_gone) == set(found)


def test_traffic_a_text_with_a_line_break_and_an_undelivered_end(traffic_sim: Simulator) -> None:
    traffic_sim.set_behaviour(delivery_delay=0, undelivered_share=1.0)
    client = traffic(traffic_sim)
    text = HELLO_RU.replace(" ", "\n")

    result = client.send(sms(5, text=text))  # goes alone, with `phones`, bound by the phone

    [message] = traffic_sim.received()
    assert (message.text, message.ref) == (text, None)
    update = client.statuses([StatusQuery(result.provider_message_id, "+79161234567", 5)])
    assert update[result.provider_message_id].status is Status.UNDELIVERED
    assert update[result.provider_message_id].reason == "provider_error:non_delivered"


def test_traffic_reserve_takes_over_when_the_main_answers_1000(traffic_sim: Simulator) -> None:
    traffic_sim.set_behaviour(error_code=1000, endpoints=["main"], affects=["send", "status", "balance"])
    client = traffic(traffic_sim)

    result = client.send(sms(42))

    assert len(traffic_sim.received()) == 1
    assert traffic_sim.stats()["requests"] == {"send": 2}
    assert traffic_sim.stats()["reserve_requests"] == {"send": 1}
    eventually(lambda: traffic_status(client, result, 42) is Status.DELIVERED)
    assert client.balance().amount == Decimal("10000") - Decimal("1.5")


def test_traffic_reserve_takes_over_when_the_main_is_unreachable(traffic_sim: Simulator) -> None:
    assert traffic(traffic_sim, main=closed_port_url(), reserve=traffic_sim.url).send(sms(42))
    traffic_sim.set_behaviour(fail_http=503, endpoints=["main"])  # up, but not answering usefully
    assert traffic(traffic_sim).send(sms(43))
    assert [m.ref for m in traffic_sim.received()] == ["42", "43"]


def test_traffic_1000_at_both_endpoints_is_transient_and_nothing_is_sent(traffic_sim: Simulator) -> None:
    traffic_sim.set_behaviour(error_code=1000)
    with pytest.raises(TransientProviderError) as caught:
        traffic(traffic_sim).send(sms(42))
    assert caught.value.code == "1000" and not caught.value.may_have_sent
    assert traffic_sim.received() == []


def test_traffic_timed_out_send_is_ambiguous_and_never_repeated(traffic_sim: Simulator) -> None:
    traffic_sim.set_behaviour(delay_seconds=1.0, delay_times=1)
    client = traffic(traffic_sim, timeout=0.3)

    with pytest.raises(TransientProviderError) as caught:
        client.send(sms(42))

    assert caught.value.may_have_sent
    with pytest.raises(LookupNotSupported):
        client.lookup(sms(42))  # so the message ends unknown_outcome, not sent twice
    assert len(traffic_sim.received()) == 1  # it was taken
    assert traffic_sim.stats()["reserve_requests"] == {}


@pytest.mark.parametrize(
    ("behaviour", "settings", "code"),
    [
        ({}, {"password": "wrong"}, "411"),
        ({"error_code": 412}, {}, "412"),
        ({"balance": 1.0}, {}, "415"),
    ],
)
def test_traffic_account_errors_are_provider_wide_for_the_whole_batch(
    traffic_sim: Simulator, behaviour: dict[str, object], settings: dict[str, str], code: str
) -> None:
    traffic_sim.set_behaviour(**behaviour)
    client = traffic(traffic_sim, **settings)

    results = client.send_many([sms(1, "+79161234561"), sms(2, "+79161234562")])

    assert all(isinstance(r, PermanentProviderError) and r.provider_wide and r.code == code for r in results)
    assert traffic_sim.stats()["requests"] == {"send": 1}  # one call, no resends one by one
    assert traffic_sim.received() == []


def test_traffic_bad_credentials_refuse_status_and_balance(traffic_sim: Simulator) -> None:
    client = traffic(traffic_sim, password="wrong")
    for call in (client.balance, lambda: client.statuses([StatusQuery("700001001", "+7916", 1)])):
        with pytest.raises(PermanentProviderError) as caught:
            call()
        assert caught.value.provider_wide and caught.value.code == "411"
    assert traffic_sim.stats()["reserve_requests"] == {}  # 411 is not a reason to try the reserve


def test_traffic_pushed_reports_are_parsed_and_answered() -> None:
    with WireServer() as receiver:
        receiver.respond(body="OK")
        sim = started("smstraffic", delivery_delay=0.05, report_url=f"{receiver.url}/dlr")
        try:
            client = traffic(sim)
            one = client.send(sms(1))
            three = client.send(sms(2, text=LONG_RU))
            pushed = eventually(lambda: len(receiver.requests) == 4 and receiver.requests)
        finally:
            sim.stop()
    parsed = [client.parse_report(IncomingRequest("POST", form=r.form)) for r in pushed]
    assert all(p.answer.status == 200 and p.answer.body == "OK" for p in parsed)
    ids = [p.reports[0].provider_message_id for p in parsed]
    assert ids[0] == one.provider_message_id  # a one-segment message is settled by its report
    assert ",".join(ids[1:]) == three.provider_message_id  # one report per segment
    assert all(p.reports[0].update.status is Status.DELIVERED for p in parsed)


# --- IQSMS ------------------------------------------------------------------------------------------------


@pytest.fixture
def iq_sim() -> Iterator[Simulator]:
    sim = started("iqsms")
    yield sim
    sim.stop()


def iqsms(sim: Simulator, *, timeout: float = 2.0, code: str = "iqsms-main", **settings: str) -> IqsmsClient:
    config = {"base_url": sim.url, "login": LOGIN, "password": PASSWORD, **settings}
    return IqsmsClient(ProviderConfig(code, "iqsms", config, timeout))


def iq_status(client: IqsmsClient, result: SendResult, ref: int) -> Status | None:
    update = client.statuses([StatusQuery(result.provider_message_id, "+7916", ref)]).get(
        result.provider_message_id
    )
    return update.status if update else None


def drained(client: IqsmsClient, limit: int = 200) -> list[Report]:
    batches: list[list[Report]] = []
    drain_status_queue(client, batches.append, limit=limit)
    return [report for batch in batches for report in batch]


def test_iqsms_cyrillic_and_segments_then_delivered_by_polling(iq_sim: Simulator) -> None:
    client = iqsms(iq_sim)

    short, long = client.send(sms(42)), client.send(sms(43, text=LONG_RU, sender=None))

    assert [(m.ref, m.text, m.sender, m.parts) for m in iq_sim.received()] == [
        ("42", HELLO_RU, "ACME", 1),
        ("43", LONG_RU, None, 3),
    ]
    assert short.provider_message_id == iq_sim.received()[0].provider_id
    assert short.update is not None and short.update.provider_status == "accepted"
    assert iq_status(client, short, 42) is None  # smsc submit
    eventually(lambda: iq_status(client, short, 42) is Status.DELIVERED)
    # Sent after the short one, it is delivered after it: on a busy machine, a moment later.
    eventually(lambda: iq_status(client, long, 43) is Status.DELIVERED)
    assert client.balance().amount == Decimal("10000") - Decimal("6")


def test_iqsms_batch_with_one_bad_number_fails_only_it_in_one_request(iq_sim: Simulator) -> None:
    client = iqsms(iq_sim)

    results = client.send_many([sms(1, "+79161234561"), sms(2, BAD), sms(3, "+79161234563")])

    bad = results[1]
    assert isinstance(bad, PermanentProviderError) and bad.number_problem
    assert bad.reason == "provider_error:invalid_mobile_phone"
    assert all(isinstance(r, SendResult) for r in (results[0], results[2]))
    assert [m.ref for m in iq_sim.received()] == ["1", "3"]
    assert iq_sim.stats()["requests"] == {"send": 1}


def test_iqsms_status_queue_drained_until_empty(iq_sim: Simulator) -> None:
    client, other = iqsms(iq_sim), iqsms(iq_sim, code="iqsms-second")
    results = client.send_many([sms(i, f"+7916123456{i}") for i in (1, 2, 3)])
    other.send(sms(9))
    assert drained(client) == []  # nothing final yet: the queue is empty

    eventually(lambda: iq_sim.stats()["pending"] == 0)
    reports = drained(client, limit=2)

    assert sorted(r.ref for r in reports if r.ref is not None) == [1, 2, 3]
    assert {r.provider_message_id for r in reports} == {r.provider_message_id for r in results}  # type: ignore[union-attr]
    assert all(r.update.status is Status.DELIVERED for r in reports)
    assert drained(client) == []  # drained: popped statuses are gone
    assert [r.ref for r in drained(other)] == [9]  # each provider's own queue


def test_iqsms_timed_out_send_is_settled_by_lookup_and_queue_and_sent_once(iq_sim: Simulator) -> None:
    iq_sim.set_behaviour(delay_seconds=1.0, delay_times=1)
    client = iqsms(iq_sim, timeout=0.3)

    with pytest.raises(TransientProviderError) as caught:
        client.send(sms(42))

    assert caught.value.may_have_sent
    found = client.lookup(sms(42))  # asked by clientId before anyone sends it again
    assert found is not None and found.provider_message_id == iq_sim.received()[0].provider_id
    eventually(lambda: iq_sim.stats()["pending"] == 0)
    [report] = drained(client)
    assert (report.ref, report.provider_message_id, report.update.status) == (
        42,
        found.provider_message_id,
        Status.DELIVERED,
    )
    assert len(iq_sim.received()) == 1 and iq_sim.stats()["requests"]["send"] == 1


def test_iqsms_lookup_of_a_message_never_taken_is_none(iq_sim: Simulator) -> None:
    iq_sim.set_behaviour(fail_http=503, fail_http_times=1)
    client = iqsms(iq_sim)
    with pytest.raises(TransientProviderError) as caught:
        client.send(sms(42))
    assert not caught.value.may_have_sent and caught.value.code == "http_503"
    assert client.lookup(sms(42)) is None
    assert iq_sim.received() == []


@pytest.mark.parametrize(
    ("behaviour", "settings", "code"),
    [
        ({}, {"password": "wrong"}, "error_authorization"),
        ({"balance": 1.0}, {}, "not_enough_balance"),
        ({"error_code": "not enough balance"}, {}, "not_enough_balance"),
    ],
)
def test_iqsms_account_errors_are_provider_wide_for_the_whole_batch(
    iq_sim: Simulator, behaviour: dict[str, object], settings: dict[str, str], code: str
) -> None:
    iq_sim.set_behaviour(**behaviour)
    client = iqsms(iq_sim, **settings)

    results = client.send_many([sms(1, "+79161234561"), sms(2, "+79161234562")])

    assert all(isinstance(r, PermanentProviderError) and r.provider_wide and r.code == code for r in results)
    assert iq_sim.received() == []


def test_iqsms_bad_credentials_refuse_every_operation(iq_sim: Simulator) -> None:
    client = iqsms(iq_sim, password="wrong")
    calls: list[Callable[[], object]] = [
        client.balance,
        lambda: client.statuses([StatusQuery("1", "+7916", 1)]),
        lambda: client.pop_statuses(),
        lambda: client.lookup(sms(1)),
    ]
    for call in calls:
        with pytest.raises(ProviderError) as caught:
            call()
        assert isinstance(caught.value, PermanentProviderError) and caught.value.provider_wide
