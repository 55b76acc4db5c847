"""IqsmsClient against a local server speaking IQSMS's JSON API v2."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from wire_server import Answer, RecordedRequest, WireServer

from smsqueue.providers.base import (
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    Report,
    SendResult,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
)
from smsqueue.providers.iqsms import (
    NUMBER_ERRORS,
    PROVIDER_WIDE,
    STATUSES,
    IqsmsClient,
    drain_status_queue,
    error_for,
    status_queue_name,
    status_update,
)
from smsqueue.statuses import Status

LOGIN = "acme"
PASSWORD = "Pa55-SECRET-word"
TEXT = "Привет, мир"
SMS = OutgoingSMS(message_id="6f1c", ref=42, to="+79161234567", text=TEXT, sender="ACME")
SEND = "/messages/v2/send.json"
STATUS = "/messages/v2/status.json"
QUEUE = "/messages/v2/statusQueue.json"
BALANCE = "/messages/v2/balance.json"


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def make_client(url: str, timeout: float = 0.5, code: str = "iqsms-main", **settings: str) -> IqsmsClient:
    all_settings = {"base_url": url, "login": LOGIN, "password": PASSWORD, **settings}
    return IqsmsClient(ProviderConfig(code, "iqsms", all_settings, timeout))


def ok(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"json": {"status": "ok", "description": None, "messages": list(messages), **extra}}


def error(description: str) -> dict[str, Any]:
    return {"json": {"status": "error", "description": description}}


def item(client_id: int | str, smsc_id: int | None, status: str) -> dict[str, Any]:
    return {"clientId": str(client_id), "smscId": smsc_id, "status": status}


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert PASSWORD not in str(seen) and PASSWORD not in repr(seen)
        seen = seen.__cause__ or seen.__context__


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the class and its settings --


def test_attributes() -> None:
    assert IqsmsClient.kind == "iqsms"
    assert IqsmsClient.default_base_url == "https://api.iqsms.ru"
    assert IqsmsClient.settings_keys == {"base_url", "login", "password", "status_queue"}
    assert IqsmsClient.secret_keys == {"password"}
    assert IqsmsClient.can_lookup is True and IqsmsClient.pushes_reports is False
    assert IqsmsClient.status_batch_size == 200


def test_validate_settings() -> None:
    assert IqsmsClient.validate_settings({"login": "a", "password": "b", "status_queue": "acme01"}) == []
    problems = IqsmsClient.validate_settings({"status_queue": "ab", "base_url": "ftp://x", "api_id": "k"})
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.api_id", "unknown_field"),
        ("settings.base_url", "invalid_url"),
        ("settings.login", "required"),
        ("settings.password", "required"),
        ("settings.status_queue", "invalid_value"),
    }
    for bad in ("a-b-c", "x" * 17, "жжж01"):
        assert IqsmsClient.validate_settings({"login": "a", "password": "b", "status_queue": bad})


def test_the_default_queue_is_derived_from_the_provider_code() -> None:
    assert status_queue_name("iqsms1") == "iqsms1"
    derived = status_queue_name("iqsms-main")
    assert derived.startswith("iqsmsmain") and len(derived) == 15 and derived.isalnum()
    long_a, long_b = (
        status_queue_name("iqsms-reserve-account-a"),
        status_queue_name("iqsms-reserve-account-b"),
    )
    assert long_a != long_b and len(long_a) == 16 and long_a.isalnum()
    assert status_queue_name("io") != "io" and len(status_queue_name("io")) >= 3  # too short as it is
    assert status_queue_name("iqsms-main") == derived  # stable: the same provider, the same queue
    assert make_client("http://x").status_queue == derived
    assert make_client("http://x", status_queue="mine01").status_queue == "mine01"


# -- send --


def test_send_posts_json_with_client_id_and_the_status_queue(server: WireServer) -> None:
    server.respond(**ok(item(42, 1001, "accepted")), path=SEND)

    result = make_client(server.url).send(SMS)

    assert result.provider_message_id == "1001"
    request = server.last
    assert request.method == "POST" and request.path == SEND and request.raw_query == ""
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert TEXT.encode("utf-8") in request.body  # UTF-8 as is, not \\u escapes
    assert request.json() == {
        "login": LOGIN,
        "password": PASSWORD,
        "statusQueueName": status_queue_name("iqsms-main"),
        "messages": [{"clientId": "42", "phone": "79161234567", "text": TEXT, "sender": "ACME"}],
    }


def test_send_without_sender_leaves_it_out(server: WireServer) -> None:
    server.respond(**ok(item(7, 5, "accepted")))
    make_client(server.url).send(OutgoingSMS("m", 7, "+79161234567", "hi"))
    assert server.last.json()["messages"] == [{"clientId": "7", "phone": "79161234567", "text": "hi"}]


def test_a_long_text_goes_whole(server: WireServer) -> None:
    text = "Ж" * 300  # five segments: IQSMS splits it, one message and one smscId for us
    server.respond(**ok(item(42, 1001, "accepted")))
    assert (
        make_client(server.url).send(OutgoingSMS("m", 42, "+79161234567", text)).provider_message_id == "1001"
    )
    assert server.last.json()["messages"][0]["text"] == text


def test_send_many_binds_by_client_id_and_a_bad_number_fails_alone(server: WireServer) -> None:
    batch = [OutgoingSMS(f"m{i}", i, f"+7916123456{i}", f"текст {i}") for i in (1, 2, 3)]
    server.respond(
        **ok(item(3, 303, "accepted"), item(2, None, "invalid mobile phone"), item(1, 101, "accepted"))
    )

    results = make_client(server.url).send_many(batch)

    assert results[0] == SendResult("101", StatusUpdate(None, None, "accepted"))
    assert results[2].provider_message_id == "303"  # type: ignore[union-attr]
    bad = results[1]
    assert isinstance(bad, PermanentProviderError) and bad.number_problem
    assert bad.reason == "provider_error:invalid_mobile_phone"
    assert [m["clientId"] for m in server.last.json()["messages"]] == ["1", "2", "3"]
    assert len(server.requests) == 1


def test_send_many_refuses_more_than_200() -> None:
    with pytest.raises(ValueError):
        make_client("http://127.0.0.1:9").send_many([SMS] * 201)


@pytest.mark.parametrize(
    ("text", "number_problem", "provider_wide"),
    [
        ("error authorization", False, True),
        ("not enough balance", False, True),
        ("invalid status queue name", False, True),
        ("invalid mobile phone", True, False),
        ("text is empty", False, False),
        ("sender address invalid", False, False),
        ("wapurl invalid", False, False),
        ("invalid schedule time format", False, False),
        ("something new", False, False),
    ],
)
def test_every_documented_error(
    server: WireServer, text: str, number_problem: bool, provider_wide: bool
) -> None:
    # as the whole request's description ...
    server.respond(**error(text), times=1)
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(SMS)
    assert (caught.value.number_problem, caught.value.provider_wide) == (number_problem, provider_wide)
    assert caught.value.reason == "provider_error:" + text.replace(" ", "_")
    assert_no_secret(caught.value)
    # ... and as one message's status
    server.respond(**ok(item(42, None, text)))
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(SMS)
    assert (caught.value.number_problem, caught.value.provider_wide) == (number_problem, provider_wide)


def test_error_table() -> None:
    assert {"error authorization", "not enough balance", "invalid status queue name"} == PROVIDER_WIDE
    assert {"invalid mobile phone"} == NUMBER_ERRORS
    assert error_for("  Error   Authorization ").provider_wide


def test_a_send_timeout_may_have_sent(server: WireServer) -> None:
    server.respond(**ok(item(42, 1001, "accepted")), delay=1.0)
    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url, timeout=0.2).send(SMS)
    assert caught.value.may_have_sent and caught.value.reason == "provider_error:timeout"


def test_connection_refused_is_transient_and_not_sent() -> None:
    with pytest.raises(TransientProviderError) as caught:
        make_client(closed_port_url()).send(SMS)
    assert not caught.value.may_have_sent


def test_http_500_is_transient_and_not_sent(server: WireServer) -> None:
    server.respond(status=500, body="oops")
    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(SMS)
    assert not caught.value.may_have_sent and caught.value.code == "http_500"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_http_401_403_404_are_provider_wide(server: WireServer, status: int) -> None:
    server.respond(status=status, body="<html>no</html>")
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(SMS)
    assert caught.value.provider_wide


@pytest.mark.parametrize("body", ["not json", "[]", '{"status": "ok", "messages": []}'])
def test_an_unusable_send_answer_may_have_sent(server: WireServer, body: str) -> None:
    server.respond(body=body)
    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(SMS)
    assert caught.value.may_have_sent


# -- status and lookup --


def test_statuses_ask_by_client_id_and_smsc_id(server: WireServer) -> None:
    server.respond(
        **ok(item(1, 101, "delivered"), item(2, 202, "smsc submit"), item(3, 303, "incorrect id")),
        path=STATUS,
    )
    queries = [StatusQuery("101", "+79161234561", 1), StatusQuery("202", "+79161234562", 2)]
    queries += [StatusQuery("303", "+79161234563", 3), StatusQuery("404", "+79161234564", 4)]

    found = make_client(server.url).statuses(queries)

    assert server.last.path == STATUS
    assert server.last.json() == {
        "login": LOGIN,
        "password": PASSWORD,
        "messages": [
            {"clientId": "1", "smscId": "101"},
            {"clientId": "2", "smscId": "202"},
            {"clientId": "3", "smscId": "303"},
            {"clientId": "4", "smscId": "404"},
        ],
    }
    assert found == {
        "101": StatusUpdate(Status.DELIVERED, None, "delivered"),
        "202": StatusUpdate(None, None, "smsc submit"),
    }


@pytest.mark.parametrize(("text", "status"), list(STATUSES.items()))
def test_every_documented_status(text: str, status: Status | None) -> None:
    update = status_update(text)
    assert update.status is status
    expected = (
        "provider_error:" + text.replace(" ", "_") if status in (Status.UNDELIVERED, Status.FAILED) else None
    )
    assert update.reason == expected


def test_lookup_finds_a_timed_out_send_by_client_id(server: WireServer) -> None:
    server.respond(**ok(item(42, 1001, "delivered")), path=STATUS)

    found = make_client(server.url).lookup(SMS)

    assert found == SendResult("1001", StatusUpdate(Status.DELIVERED, None, "delivered"))
    assert server.last.json()["messages"] == [{"clientId": "42"}]


@pytest.mark.parametrize("answer", [ok(item(42, None, "incorrect id")), ok()])
def test_lookup_of_a_message_iqsms_does_not_have_is_none(server: WireServer, answer: dict[str, Any]) -> None:
    server.respond(**answer, path=STATUS)
    assert make_client(server.url).lookup(SMS) is None


def test_lookup_failure_is_raised(server: WireServer) -> None:
    server.respond(**error("error authorization"), path=STATUS)
    with pytest.raises(PermanentProviderError):
        make_client(server.url).lookup(SMS)


# -- the status queue --


def test_pop_statuses_reads_the_queue_as_reports_with_our_ref(server: WireServer) -> None:
    server.respond(**ok(item(1, 101, "delivered"), item(2, 202, "smsc reject"), item(3, 303, "incorrect id")))

    reports = make_client(server.url).pop_statuses(50)

    assert server.last.path == QUEUE
    assert server.last.json() == {
        "login": LOGIN,
        "password": PASSWORD,
        "statusQueueName": status_queue_name("iqsms-main"),
        "statusQueueLimit": 50,
    }
    assert reports == [
        Report("101", StatusUpdate(Status.DELIVERED, None, "delivered"), ref=1),
        Report("202", StatusUpdate(Status.FAILED, "provider_error:smsc_reject", "smsc reject"), ref=2),
    ]


def test_an_empty_queue_is_no_reports(server: WireServer) -> None:
    server.respond(**error("queue is empty"))
    assert make_client(server.url).pop_statuses() == []


def queue_of(statuses: list[dict[str, Any]]) -> Any:
    """A queue server: pops up to statusQueueLimit items per call, `queue is empty` when drained."""

    def answer(request: RecordedRequest) -> Answer:
        limit = request.json()["statusQueueLimit"]
        taken, statuses[:] = statuses[:limit], statuses[limit:]
        body = (
            {"status": "ok", "messages": taken}
            if taken
            else {"status": "error", "description": "queue is empty"}
        )
        return Answer(body=json.dumps(body).encode())

    return answer


def test_drain_pops_in_batches_until_the_queue_is_empty(server: WireServer) -> None:
    server.respond_with(queue_of([item(i, 100 + i, "delivered") for i in range(1, 6)]), path=QUEUE)
    batches: list[list[Report]] = []

    handled = drain_status_queue(make_client(server.url), batches.append, limit=2)

    assert handled == 5
    assert [[r.ref for r in batch] for batch in batches] == [[1, 2], [3, 4], [5]]
    assert len(server.requests) == 3  # the short batch said the queue was drained


def test_drain_of_an_exact_multiple_stops_at_the_empty_answer(server: WireServer) -> None:
    server.respond_with(queue_of([item(i, i, "delivered") for i in range(1, 5)]), path=QUEUE)
    batches: list[list[Report]] = []
    assert drain_status_queue(make_client(server.url), batches.append, limit=2) == 4
    assert len(batches) == 2 and len(server.requests) == 3


def test_drain_stops_after_max_batches(server: WireServer) -> None:
    server.respond_with(queue_of([item(i, i, "delivered") for i in range(1, 11)]), path=QUEUE)
    assert drain_status_queue(make_client(server.url), lambda _: None, limit=2, max_batches=3) == 6


def test_drain_stops_when_the_handler_fails(server: WireServer) -> None:
    server.respond_with(queue_of([item(i, i, "delivered") for i in range(1, 5)]), path=QUEUE)

    def fail(_: list[Report]) -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        drain_status_queue(make_client(server.url), fail, limit=2)
    assert len(server.requests) == 1


def test_a_timed_out_send_is_settled_from_the_queue_without_a_resend(server: WireServer) -> None:
    server.respond(**ok(item(42, 1001, "accepted")), path=SEND, delay=1.0)
    server.respond_with(queue_of([item(42, 1001, "delivered")]), path=QUEUE)
    client = make_client(server.url, timeout=0.2)
    with pytest.raises(TransientProviderError):
        client.send(SMS)
    batches: list[list[Report]] = []

    drain_status_queue(client, batches.append)

    assert batches == [[Report("1001", StatusUpdate(Status.DELIVERED, None, "delivered"), ref=42)]]
    assert [r.path for r in server.requests] == [SEND, QUEUE]


# -- balance --


def test_balance(server: WireServer) -> None:
    server.respond(
        json={"status": "ok", "balance": [{"type": "RUB", "balance": "100.50", "credit": 0}]}, path=BALANCE
    )
    balance = make_client(server.url).balance()
    assert balance.amount == Decimal("100.50") and balance.currency == "RUB"
    assert server.last.json() == {"login": LOGIN, "password": PASSWORD}


def test_balance_without_an_amount_is_an_error(server: WireServer) -> None:
    server.respond(json={"status": "ok", "balance": []})
    with pytest.raises(TransientProviderError):
        make_client(server.url).balance()


def test_balance_error_without_secrets(server: WireServer) -> None:
    server.respond(**error("error authorization"))
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).balance()
    assert caught.value.provider_wide
    assert_no_secret(caught.value)


def test_a_status_answer_without_client_id_is_matched_by_smsc_id(server: WireServer) -> None:
    server.respond(**ok({"smscId": 101, "status": "delivery error"}), path=STATUS)
    found = make_client(server.url).statuses([StatusQuery("101", SMS.to, 1)])
    assert found == {
        "101": StatusUpdate(Status.UNDELIVERED, "provider_error:delivery_error", "delivery error")
    }
