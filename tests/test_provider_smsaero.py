"""SmsAeroClient against a local server speaking SMS Aero's v2 wire format."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from wire_server import WireServer

from smsqueue.providers import client_class
from smsqueue.providers.base import (
    IncomingRequest,
    LookupNotSupported,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    StatusQuery,
    TransientProviderError,
)
from smsqueue.providers.smsaero import STATUSES, SmsAeroClient
from smsqueue.statuses import Status

EMAIL = "robot@acme.example"
API_KEY = "kQ9sECRETxV2mN7pL4rT8wY1zB6cD3fH"
TEXT = "Привет, мир"
REPORT_URL = "https://smsqueue.example/api/v1/providers/aero/dlr?token=t0k"
SMS = OutgoingSMS(
    message_id="6f1c", ref=42, to="+79161234567", text=TEXT, sender="ACME", report_url=REPORT_URL
)


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def client_for(url: str, timeout: float = 0.5) -> SmsAeroClient:
    settings = {"base_url": f"{url}/v2", "email": EMAIL, "api_key": API_KEY}
    return SmsAeroClient(ProviderConfig("aero", "smsaero", settings, timeout))


def message(status: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": 12345,
        "from": "ACME",
        "number": "79161234567",
        "text": TEXT,
        "status": status,
        "extendStatus": "queue",
        "channel": "DIRECT",
        "cost": 5.49,
        "dateCreate": 1719119523,
        "dateSend": 1719119523,
        **extra,
    }


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert API_KEY not in str(seen) and API_KEY not in repr(seen)
        seen = seen.__cause__ or seen.__context__


# -- the class --


def test_registered_kind_and_attributes() -> None:
    assert client_class("smsaero") is SmsAeroClient
    assert SmsAeroClient.default_base_url == "https://gate.smsaero.ru/v2"
    assert SmsAeroClient.settings_keys == {"base_url", "email", "api_key"}
    assert SmsAeroClient.secret_keys == {"api_key"}
    assert SmsAeroClient.status_batch_size == 1
    assert SmsAeroClient.pushes_reports is True
    assert SmsAeroClient.can_lookup is False
    with pytest.raises(LookupNotSupported):
        client_for("http://127.0.0.1:9").lookup(SMS)


def test_validate_settings() -> None:
    assert SmsAeroClient.validate_settings({"email": EMAIL, "api_key": "k"}) == []
    problems = SmsAeroClient.validate_settings({"email": "nope", "base_url": "gate", "password": "x"})
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.password", "unknown_field"),
        ("settings.email", "required"),
        ("settings.api_key", "required"),
        ("settings.base_url", "invalid_url"),
    }


# -- send --


def test_send_posts_json_with_basic_auth(server: WireServer) -> None:
    server.respond(path="/v2/sms/send", json={"success": True, "data": message(), "message": None})

    result = client_for(server.url).send(SMS)

    assert result.provider_message_id == "12345"
    assert result.cost == Decimal("5.49")
    assert result.update is None
    request = server.last
    assert request.method == "POST" and request.path == "/v2/sms/send" and request.raw_query == ""
    token = base64.b64encode(f"{EMAIL}:{API_KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {token}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert TEXT.encode("utf-8") in request.body  # UTF-8, not \u escapes
    assert request.json() == {
        "number": "79161234567",
        "text": TEXT,
        "sign": "ACME",
        "callbackUrl": REPORT_URL,
    }


def test_send_without_sender_uses_the_shared_sign_and_no_callback(server: WireServer) -> None:
    server.respond(json={"success": True, "data": message()})

    client_for(server.url).send(OutgoingSMS(message_id="m", ref=1, to="+79161234567", text="hi"))

    assert server.last.json() == {"number": "79161234567", "text": "hi", "sign": "SMS Aero"}


def test_send_answer_with_a_final_status_carries_it(server: WireServer) -> None:
    server.respond(json={"success": True, "data": message(status=6, extendStatus="reject")})

    result = client_for(server.url).send(SMS)

    assert result.update is not None and result.update.status is Status.FAILED
    assert result.update.reason == "provider_error:6"


BAD_CREDENTIALS = {
    "success": False,
    "data": None,
    "message": "Your request was made with invalid credentials.",
}


def failure(message: str, data: Any = None) -> dict[str, Any]:
    return {"success": False, "data": data, "message": message}


P, T = PermanentProviderError, TransientProviderError


@pytest.mark.parametrize(
    ("status", "answer", "code", "error_type", "number_problem", "provider_wide"),
    [
        (401, BAD_CREDENTIALS, "unauthorized", P, False, True),
        (200, BAD_CREDENTIALS, "unauthorized", P, False, True),
        (400, failure("Validation error.", {"number": ["incorrect"]}), "invalid_number", P, True, False),
        (400, failure("Invalid phone number"), "invalid_number", P, True, False),
        (400, failure("Validation error.", {"sign": ["not approved"]}), "sign", P, False, False),
        (400, failure("Validation error.", {"text": ["too long"]}), "validation", P, False, False),
        (200, {"result": "no credits"}, "no_money", P, False, True),
        (200, failure("Not enough money on the balance"), "no_money", P, False, True),
        (200, {"result": "reject", "reason": "spam"}, "reject", P, False, False),
        (400, failure("Exceeded limit of numbers"), "limit", T, None, None),
        (404, failure("Not found"), "not_found", P, False, False),
        (409, failure("Conflict"), "http_409", P, False, False),
    ],
)
def test_error_answers_are_mapped(
    server: WireServer,
    status: int,
    answer: dict[str, Any],
    code: str,
    error_type: type,
    number_problem: bool | None,
    provider_wide: bool | None,
) -> None:
    server.respond(status=status, json=answer)

    with pytest.raises(error_type) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.code == code
    assert caught.value.reason == ("invalid_number" if code == "invalid_number" else f"provider_error:{code}")
    if error_type is PermanentProviderError:
        assert caught.value.number_problem is number_problem
        assert caught.value.provider_wide is provider_wide
    else:
        assert caught.value.may_have_sent is False
    assert_no_secret(caught.value)


def test_a_4xx_without_json_is_permanent(server: WireServer) -> None:
    server.respond(status=401, body="Unauthorized")

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.provider_wide and caught.value.reason == "provider_error:unauthorized"


def test_an_echoed_api_key_is_scrubbed_from_the_message(server: WireServer) -> None:
    server.respond(status=400, json={"success": False, "message": f"bad key {API_KEY} for {EMAIL}"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert "***" in str(caught.value)
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    "answer", [b"<html>gateway</html>", b'{"success": true, "data": {}}', b'{"success": true, "data": null}']
)
def test_an_accepted_send_we_cannot_read_may_have_been_sent(server: WireServer, answer: bytes) -> None:
    server.respond(body=answer)

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.may_have_sent is True


def test_http_5xx_and_429_are_transient_and_not_sent(server: WireServer) -> None:
    for status in (500, 429):
        server.respond(status=status, json={"success": False}, times=1)
        with pytest.raises(TransientProviderError) as caught:
            client_for(server.url).send(SMS)
        assert caught.value.may_have_sent is False


def test_timeout_after_the_request_went_out_may_have_sent(server: WireServer) -> None:
    server.respond(json={"success": True, "data": message()}, delay=3)

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url, timeout=0.5).send(SMS)

    assert caught.value.may_have_sent is True
    assert_no_secret(caught.value)


def test_connection_refused_is_transient_and_not_sent() -> None:
    with pytest.raises(TransientProviderError) as caught:
        client_for(closed_port_url()).send(SMS)

    assert caught.value.may_have_sent is False
    assert_no_secret(caught.value)


# -- statuses --


def test_status_asks_one_id(server: WireServer) -> None:
    server.respond(path="/v2/sms/status", json={"success": True, "data": message(1, extendStatus="delivery")})

    result = client_for(server.url).statuses([StatusQuery("12345", "+79161234567", 42)])

    assert server.last.method == "POST" and server.last.json() == {"id": 12345}
    assert server.last.headers["authorization"].startswith("Basic ")
    update = result["12345"]
    assert (update.status, update.reason, update.provider_status) == (Status.DELIVERED, None, "1")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, None),
        (1, Status.DELIVERED),
        (2, Status.UNDELIVERED),
        (3, None),
        (4, None),
        (6, Status.FAILED),
        (8, None),
    ],
)
def test_every_status_is_mapped(server: WireServer, code: int, status: Status | None) -> None:
    assert STATUSES[code] is status
    server.respond(json={"success": True, "data": message(code)})

    update = client_for(server.url).statuses([StatusQuery("12345", "+79161234567", 42)])["12345"]

    assert update.status is status and update.provider_status == str(code)
    failed = status in (Status.UNDELIVERED, Status.FAILED)
    assert update.reason == (f"provider_error:{code}" if failed else None)


def test_unknown_message_is_left_out(server: WireServer) -> None:
    server.respond(status=404, json={"success": False, "data": None, "message": "Not found"})

    assert client_for(server.url).statuses([StatusQuery("999", "+79161234567", 1)]) == {}


def test_status_with_bad_credentials_raises(server: WireServer) -> None:
    server.respond(status=401, json=BAD_CREDENTIALS)

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).statuses([StatusQuery("1", "+79161234567", 1)])

    assert caught.value.provider_wide


def test_status_batch_is_one() -> None:
    with pytest.raises(ValueError):
        client_for("http://127.0.0.1:9").statuses([StatusQuery("1", "+7", 1), StatusQuery("2", "+7", 2)])


# -- delivery reports --


@pytest.mark.parametrize(
    "request_",
    [
        IncomingRequest(method="POST", json=message(1, extendStatus="delivery")),
        IncomingRequest(method="POST", json={"success": True, "data": message(1)}),
        IncomingRequest(method="POST", json=[message(1)]),
        IncomingRequest(method="POST", form={"id": ["12345"], "status": ["1"], "extendStatus": ["delivery"]}),
        IncomingRequest(method="GET", args={"id": ["12345"], "status": ["1"]}),
    ],
)
def test_report_shapes_are_parsed_and_answered_200(request_: IncomingRequest) -> None:
    parsed = client_for("http://127.0.0.1:9").parse_report(request_)

    assert [(r.provider_message_id, r.update.status) for r in parsed.reports] == [("12345", Status.DELIVERED)]
    assert (parsed.answer.status, parsed.answer.body) == (200, "OK")


def test_report_of_a_failure_has_the_reason() -> None:
    parsed = client_for("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST", json=message(2)))

    assert parsed.reports[0].update.status is Status.UNDELIVERED
    assert parsed.reports[0].update.reason == "provider_error:2"


def test_empty_report_is_acknowledged() -> None:
    parsed = client_for("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST"))

    assert parsed.reports == [] and parsed.answer.status == 200


# -- balance --


def test_balance(server: WireServer) -> None:
    server.respond(path="/v2/balance", json={"success": True, "data": {"balance": 1389.26}, "message": None})

    balance = client_for(server.url).balance()

    assert balance.amount == Decimal("1389.26") and balance.currency == "RUB"
    assert server.last.method == "POST" and server.last.path == "/v2/balance"
    assert server.last.headers["authorization"].startswith("Basic ")


def test_balance_with_bad_credentials(server: WireServer) -> None:
    server.respond(status=401, json=BAD_CREDENTIALS)

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).balance()

    assert caught.value.provider_wide
    assert_no_secret(caught.value)
