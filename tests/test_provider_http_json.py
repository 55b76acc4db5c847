"""HttpJsonClient against a local server speaking the generic JSON contract."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
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
from smsqueue.providers.http_json import STATUS_WORDS, HttpJsonClient, value_at
from smsqueue.statuses import Status

TOKEN = "Bearer s3cr3t-T0KEN-value"
TEXT = "Привет, мир"
SMS = OutgoingSMS(message_id="6f1c", ref=42, to="+79161234567", text=TEXT, sender="ACME")


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def client_for(url: str, timeout: float = 0.5, **settings: Any) -> HttpJsonClient:
    all_settings = {"url": f"{url}/send", "token": TOKEN, **settings}
    return HttpJsonClient(ProviderConfig("agg", "http_json", all_settings, timeout))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert "s3cr3t" not in str(seen) and "s3cr3t" not in repr(seen)
        seen = seen.__cause__ or seen.__context__


# -- the class --


def test_registered_kind_and_attributes() -> None:
    assert client_class("http_json") is HttpJsonClient
    assert HttpJsonClient.settings_keys == {
        "url",
        "auth_header",
        "token",
        "to_field",
        "text_field",
        "sender_field",
        "id_path",
        "status_url",
    }
    assert HttpJsonClient.secret_keys == {"token"}
    assert HttpJsonClient.pushes_reports is True
    assert HttpJsonClient.can_lookup is False
    with pytest.raises(LookupNotSupported):
        client_for("http://127.0.0.1:9").lookup(SMS)


def test_validate_settings() -> None:
    assert HttpJsonClient.validate_settings({"url": "https://agg.example/send"}) == []
    assert (
        HttpJsonClient.validate_settings(
            {
                "url": "https://agg.example/send",
                "auth_header": "X-Api-Key",
                "token": "k",
                "to_field": "phone",
                "text_field": "message",
                "sender_field": "from",
                "id_path": "data.id",
                "status_url": "https://agg.example/status/{id}",
            }
        )
        == []
    )
    problems = HttpJsonClient.validate_settings(
        {
            "status_url": "https://agg.example/status",
            "auth_header": "Bad Header:",
            "to_field": "",
            "balance_url": "https://x",
        }
    )
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.balance_url", "unknown_field"),
        ("settings.url", "invalid_url"),
        ("settings.status_url", "invalid_url"),
        ("settings.auth_header", "invalid_header"),
        ("settings.token", "required"),
        ("settings.to_field", "invalid"),
    }


@pytest.mark.parametrize(
    ("document", "path", "value"),
    [
        ({"id": 7}, "id", 7),
        ({"data": {"id": "a"}}, "data.id", "a"),
        ({"messages": [{"id": "m1"}]}, "messages.0.id", "m1"),
        ({"messages": []}, "messages.0.id", None),
        ({"data": "x"}, "data.id", None),
        (None, "id", None),
    ],
)
def test_value_at(document: Any, path: str, value: Any) -> None:
    assert value_at(document, path) == value


# -- send --


def test_send_posts_json_with_the_token_verbatim(server: WireServer) -> None:
    server.respond(path="/send", json={"id": "abc-1"})

    result = client_for(server.url).send(SMS)

    assert result.provider_message_id == "abc-1"
    request = server.last
    assert request.method == "POST" and request.path == "/send"
    assert request.headers["authorization"] == TOKEN
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert TEXT.encode("utf-8") in request.body  # UTF-8, not \u escapes
    assert request.json() == {"to": "+79161234567", "text": TEXT, "sender": "ACME"}


def test_send_with_custom_fields_header_and_id_path(server: WireServer) -> None:
    server.respond(json={"result": {"messages": [{"msg_id": 991}]}})
    client = client_for(
        server.url,
        auth_header="X-Api-Key",
        token="s3cr3t-raw",
        to_field="phone",
        text_field="message",
        sender_field="from",
        id_path="result.messages.0.msg_id",
    )

    result = client.send(OutgoingSMS(message_id="m", ref=1, to="+79161234567", text=TEXT))

    assert result.provider_message_id == "991"
    assert server.last.headers["x-api-key"] == "s3cr3t-raw"
    assert "authorization" not in server.last.headers
    assert server.last.json() == {"phone": "+79161234567", "message": TEXT}


def test_send_without_token_sends_no_auth_header(server: WireServer) -> None:
    server.respond(json={"id": 1})
    client = HttpJsonClient(ProviderConfig("agg", "http_json", {"url": f"{server.url}/send"}, 0.5))

    client.send(SMS)

    assert "authorization" not in server.last.headers


@pytest.mark.parametrize(
    ("status", "provider_wide"),
    [(400, False), (401, True), (402, True), (403, True), (404, False), (422, False)],
)
def test_4xx_is_permanent(server: WireServer, status: int, provider_wide: bool) -> None:
    server.respond(status=status, json={"error": "nope"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.reason == f"provider_error:http_{status}"
    assert caught.value.provider_wide is provider_wide and caught.value.number_problem is False
    assert_no_secret(caught.value)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_4xx_naming_invalid_number_is_a_number_problem(server: WireServer, status: int) -> None:
    server.respond(status=status, json={"error": "invalid_number", "message": "no such number"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.reason == "invalid_number"
    assert caught.value.number_problem is True and caught.value.provider_wide is False
    assert caught.value.code == f"http_{status}"  # the provider's own answer, kept for the event detail


def test_an_account_refusal_naming_invalid_number_stays_the_accounts(server: WireServer) -> None:
    server.respond(status=403, json={"error": "invalid_number"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert (caught.value.reason, caught.value.provider_wide) == ("provider_error:http_403", True)
    assert caught.value.number_problem is False


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_5xx_and_429_are_transient_and_not_sent(server: WireServer, status: int) -> None:
    server.respond(status=status, json={"error": "later"}, headers={"Retry-After": "7"})

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.may_have_sent is False and caught.value.retry_after == 7.0


@pytest.mark.parametrize("answer", [b"accepted", b"{}", b'{"id": null}', b'{"id": ""}', b'{"id": {"x": 1}}'])
def test_a_2xx_without_an_id_may_have_sent(server: WireServer, answer: bytes) -> None:
    server.respond(status=202, body=answer)

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.may_have_sent is True and caught.value.reason == "provider_error:no_id"


def test_timeout_after_the_request_went_out_may_have_sent(server: WireServer) -> None:
    server.respond(json={"id": "late"}, delay=3)

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


def status_client(url: str) -> HttpJsonClient:
    return client_for(url, status_url=f"{url}/status/{{id}}")


def test_status_gets_the_templated_url(server: WireServer) -> None:
    server.respond(json={"status": "delivered"})

    result = status_client(server.url).statuses([StatusQuery("a/b 1", "+79161234567", 1)])

    assert server.last.method == "GET" and server.last.target == "/status/a%2Fb%201"
    assert server.last.headers["authorization"] == TOKEN
    assert result["a/b 1"].status is Status.DELIVERED


@pytest.mark.parametrize("word", sorted(STATUS_WORDS))
def test_every_status_word_is_mapped(server: WireServer, word: str) -> None:
    server.respond(json={"status": word.upper()})

    update = status_client(server.url).statuses([StatusQuery("1", "+79161234567", 1)])["1"]

    assert update.status is STATUS_WORDS[word] and update.provider_status == word.upper()
    failed = STATUS_WORDS[word] in (Status.UNDELIVERED, Status.FAILED)
    assert update.reason == (f"provider_error:{word}" if failed else None)


def test_status_reason_is_kept(server: WireServer) -> None:
    server.respond(json={"status": "failed", "reason": "blocked"})

    update = status_client(server.url).statuses([StatusQuery("1", "+79161234567", 1)])["1"]

    assert (update.status, update.reason) == (Status.FAILED, "provider_error:blocked")


@pytest.mark.parametrize("word", ["failed", "rejected"])
def test_a_failure_for_invalid_number_is_ours_to_name(server: WireServer, word: str) -> None:
    server.respond(json={"status": word, "reason": "invalid_number"})

    update = status_client(server.url).statuses([StatusQuery("1", "+79161234567", 1)])["1"]

    assert (update.status, update.reason, update.provider_status) == (Status.FAILED, "invalid_number", word)


@pytest.mark.parametrize(
    ("status", "body"), [(404, b"{}"), (200, b'{"status": "mystery"}'), (200, b"not json"), (200, b"[]")]
)
def test_unknown_or_unreadable_status_is_left_out(server: WireServer, status: int, body: bytes) -> None:
    server.respond(status=status, body=body)

    assert status_client(server.url).statuses([StatusQuery("1", "+79161234567", 1)]) == {}


def test_status_with_bad_credentials_raises(server: WireServer) -> None:
    server.respond(status=401, json={})

    with pytest.raises(PermanentProviderError) as caught:
        status_client(server.url).statuses([StatusQuery("1", "+79161234567", 1)])

    assert caught.value.provider_wide


def test_no_status_url_no_call(server: WireServer) -> None:
    assert client_for(server.url).statuses([StatusQuery("1", "+79161234567", 1)]) == {}
    assert server.requests == []


# -- delivery reports --


def test_report_is_parsed_and_answered_ok() -> None:
    body = {"id": "abc-1", "status": "undelivered", "reason": "absent"}

    parsed = client_for("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST", json=body))

    assert [(r.provider_message_id, r.update.status, r.update.reason) for r in parsed.reports] == [
        ("abc-1", Status.UNDELIVERED, "provider_error:absent")
    ]
    assert parsed.answer.status == 200 and json.loads(parsed.answer.body) == {"ok": True}
    assert parsed.answer.content_type == "application/json"


def test_report_list_and_default_reasons() -> None:
    body = [{"id": 1, "status": "delivered"}, {"id": 2, "status": "failed"}]

    parsed = client_for("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST", json=body))

    assert [(r.provider_message_id, r.update.status, r.update.reason) for r in parsed.reports] == [
        ("1", Status.DELIVERED, None),
        ("2", Status.FAILED, "provider_error:failed"),
    ]


@pytest.mark.parametrize(
    "body",
    [None, "text", {"status": "delivered"}, {"id": "1"}, {"id": "1", "status": "lost"}, [{"id": True}]],
)
def test_a_report_outside_the_contract_is_refused(body: Any) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client_for("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST", json=body))

    assert caught.value.reason == "provider_error:bad_report"


# -- balance --


def test_balance_is_not_supported(server: WireServer) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).balance()

    assert caught.value.reason == "provider_error:balance_unsupported"
    assert server.requests == []
