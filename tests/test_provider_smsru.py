"""SmsRuClient against a local server speaking SMS.ru's wire format."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from wire_server import WireServer

from smsqueue.providers import client_class
from smsqueue.providers.base import (
    IncomingRequest,
    InvalidNumber,
    LookupNotSupported,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    StatusQuery,
    TransientProviderError,
)
from smsqueue.providers.smsru import REQUEST_ERRORS, STATUSES, SmsRuClient, ttl_minutes
from smsqueue.statuses import Status

API_ID = "A3CA597E-SECRET-4E7D-82EE-CF82B52B1A8B"
TEXT = "Привет, мир"
SMS = OutgoingSMS(message_id="6f1c", ref=42, to="+79161234567", text=TEXT, sender="ACME", ttl_seconds=3600)


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def client_for(url: str, timeout: float = 0.5) -> SmsRuClient:
    return SmsRuClient(ProviderConfig("smsru-main", "smsru", {"base_url": url, "api_id": API_ID}, timeout))


def sent_ok(number: str = "79161234567", sms_id: str = "000000-10000001") -> dict[str, Any]:
    return {
        "status": "OK",
        "status_code": 100,
        "sms": {number: {"status": "OK", "status_code": 100, "sms_id": sms_id}},
        "balance": 4122.56,
    }


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert API_ID not in str(seen) and API_ID not in repr(seen)
        seen = seen.__cause__ or seen.__context__


# -- the class --


def test_registered_kind_and_attributes() -> None:
    assert client_class("smsru") is SmsRuClient
    assert SmsRuClient.kind == "smsru"
    assert SmsRuClient.default_base_url == "https://sms.ru"
    assert SmsRuClient.settings_keys == {"base_url", "api_id"}
    assert SmsRuClient.secret_keys == {"api_id"}
    assert SmsRuClient.status_batch_size == 100
    assert SmsRuClient.pushes_reports is True
    assert SmsRuClient.can_lookup is False


def test_lookup_is_not_supported() -> None:
    with pytest.raises(LookupNotSupported):
        client_for("http://127.0.0.1:9").lookup(SMS)


def test_validate_settings() -> None:
    assert SmsRuClient.validate_settings({"api_id": "x"}) == []
    assert SmsRuClient.validate_settings({"api_id": "x", "base_url": "https://sms.ru"}) == []
    problems = SmsRuClient.validate_settings({"base_url": "ftp://x", "login": "a"})
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.login", "unknown_field"),
        ("settings.api_id", "required"),
        ("settings.base_url", "invalid_url"),
    }


# -- send --


def test_send_posts_the_form_with_api_id_and_utf8_text(server: WireServer) -> None:
    server.respond(json=sent_ok(), path="/sms/send")

    result = client_for(server.url).send(SMS)

    assert result.provider_message_id == "000000-10000001"
    request = server.last
    assert request.method == "POST" and request.path == "/sms/send" and request.raw_query == ""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"msg=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%2C+%D0%BC%D0%B8%D1%80" in request.body
    assert request.form == {
        "api_id": [API_ID],
        "json": ["1"],
        "to": ["79161234567"],
        "msg": [TEXT],
        "from": ["ACME"],
        "ttl": ["60"],
    }


def test_send_without_sender_or_ttl_leaves_them_out(server: WireServer) -> None:
    server.respond(json=sent_ok())
    sms = OutgoingSMS(message_id="m", ref=1, to="+79161234567", text="hi")

    client_for(server.url).send(sms)

    assert set(server.last.form) == {"api_id", "json", "to", "msg"}


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(1, 1), (59, 1), (61, 2), (3600, 60), (86400, 1440), (86401, None), (0, 1)]
)
def test_ttl_is_minutes_within_smsru_range(seconds: int, minutes: int | None) -> None:
    assert ttl_minutes(seconds) == minutes


def test_send_takes_the_only_entry_whatever_its_key(server: WireServer) -> None:
    server.respond(json=sent_ok(number="+7 916 123-45-67", sms_id="202-1"))

    assert client_for(server.url).send(SMS).provider_message_id == "202-1"


EXPECTED_KIND = {
    "account": (PermanentProviderError, {"provider_wide": True, "number_problem": False}),
    "number": (PermanentProviderError, {"provider_wide": False, "number_problem": True}),
    "request": (PermanentProviderError, {"provider_wide": False, "number_problem": False}),
    "later": (TransientProviderError, {"may_have_sent": False}),
}


@pytest.mark.parametrize("code", sorted(REQUEST_ERRORS))
def test_every_request_error_code_is_mapped(server: WireServer, code: int) -> None:
    server.respond(json={"status": "ERROR", "status_code": code, "status_text": "текст ошибки"})

    with pytest.raises((PermanentProviderError, TransientProviderError)) as caught:
        client_for(server.url).send(SMS)

    error_type, flags = EXPECTED_KIND[REQUEST_ERRORS[code][0].value]
    assert type(caught.value) is (InvalidNumber if code == 202 else error_type)
    for flag, value in flags.items():
        assert getattr(caught.value, flag) is value
    # 202 "bad recipient number" is ours to name; the stop lists (209, 215) keep SMS.ru's code.
    assert caught.value.reason == ("invalid_number" if code == 202 else f"provider_error:{code}")
    assert caught.value.code == str(code)
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    ("code", "error_type", "number_problem", "provider_wide"),
    [
        (200, PermanentProviderError, False, True),
        (201, PermanentProviderError, False, True),
        (202, PermanentProviderError, True, False),
        (204, PermanentProviderError, False, False),  # a sender name's refusal: not the account's
        (207, PermanentProviderError, False, False),
        (209, PermanentProviderError, True, False),
        (206, TransientProviderError, None, None),
        (220, TransientProviderError, None, None),
        (230, TransientProviderError, None, None),
        (231, TransientProviderError, None, None),
        (232, TransientProviderError, None, None),
        (500, TransientProviderError, None, None),
    ],
)
def test_design_codes_map_as_documented(
    server: WireServer, code: int, error_type: type, number_problem: bool | None, provider_wide: bool | None
) -> None:
    server.respond(json={"status": "ERROR", "status_code": code})

    with pytest.raises(error_type) as caught:
        client_for(server.url).send(SMS)

    if number_problem is not None:
        assert caught.value.number_problem is number_problem
        assert caught.value.provider_wide is provider_wide


def test_unknown_request_code_is_permanent(server: WireServer) -> None:
    server.respond(json={"status": "ERROR", "status_code": 777})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.reason == "provider_error:777"
    assert not caught.value.provider_wide and not caught.value.number_problem


def test_number_level_error_inside_an_ok_answer(server: WireServer) -> None:
    server.respond(
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {"79161234567": {"status": "ERROR", "status_code": 202, "status_text": "Неправильно"}},
            "balance": 10,
        }
    )

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.number_problem and caught.value.reason == "invalid_number"
    assert caught.value.code == "202"  # SMS.ru's own code, kept for the event detail


@pytest.mark.parametrize(
    "answer",
    [
        b"<html>oops</html>",
        b'{"status": "OK", "status_code": 100, "sms": {}}',
        b'{"status": "OK", "status_code": 100, "sms": {"79161234567": {"status": "OK"}}}',
    ],
)
def test_an_accepted_send_we_cannot_read_may_have_been_sent(server: WireServer, answer: bytes) -> None:
    server.respond(body=answer)

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.may_have_sent is True


def test_http_5xx_is_transient_and_not_sent(server: WireServer) -> None:
    server.respond(status=503, body="busy")

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url).send(SMS)

    assert caught.value.may_have_sent is False and caught.value.reason == "provider_error:http_503"


def test_timeout_after_the_request_went_out_may_have_sent(server: WireServer) -> None:
    server.respond(json=sent_ok(), delay=3)

    with pytest.raises(TransientProviderError) as caught:
        client_for(server.url, timeout=0.5).send(SMS)

    assert caught.value.may_have_sent is True
    assert caught.value.reason == "provider_error:timeout"
    assert_no_secret(caught.value)


def test_connection_refused_is_transient_and_not_sent() -> None:
    with pytest.raises(TransientProviderError) as caught:
        client_for(closed_port_url()).send(SMS)

    assert caught.value.may_have_sent is False
    assert_no_secret(caught.value)


# -- statuses --


def test_statuses_asks_for_the_batch_in_one_call(server: WireServer) -> None:
    server.respond(
        path="/sms/status",
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {
                "1-1": {"status": "OK", "status_code": 103, "status_text": "Сообщение доставлено"},
                "1-2": {"status": "OK", "status_code": 102, "status_text": "в пути"},
                "1-3": {"status": "OK", "status_code": 105, "status_text": "удалено оператором"},
                "1-4": {"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"},
            },
            "balance": 1,
        },
    )
    queries = [StatusQuery(f"1-{n}", "+79161234567", n) for n in range(1, 5)]

    result = client_for(server.url).statuses(queries)

    assert server.last.method == "POST"
    assert server.last.form == {"api_id": [API_ID], "json": ["1"], "sms_id": ["1-1,1-2,1-3,1-4"]}
    assert set(result) == {"1-1", "1-2", "1-3"}
    assert result["1-1"].status is Status.DELIVERED and result["1-1"].reason is None
    assert result["1-2"].status is None and result["1-2"].provider_status == "102"
    assert result["1-3"].status is Status.UNDELIVERED and result["1-3"].reason == "provider_error:105"


@pytest.mark.parametrize("code", sorted(STATUSES))
def test_every_status_code_is_mapped(server: WireServer, code: int) -> None:
    server.respond(
        json={"status": "OK", "status_code": 100, "sms": {"9-9": {"status": "OK", "status_code": code}}}
    )

    update = client_for(server.url).statuses([StatusQuery("9-9", "+79161234567", 1)])["9-9"]

    assert update.status is STATUSES[code]
    assert update.provider_status == str(code)
    failed = STATUSES[code] in (Status.UNDELIVERED, Status.FAILED)
    assert update.reason == (f"provider_error:{code}" if failed else None)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (100, None),
        (101, None),
        (102, None),
        (103, Status.DELIVERED),
        (110, Status.DELIVERED),
        (104, Status.UNDELIVERED),
        (105, Status.UNDELIVERED),
        (106, Status.UNDELIVERED),
        (107, Status.UNDELIVERED),
        (108, Status.FAILED),
        (150, Status.FAILED),
    ],
)
def test_design_status_codes(code: int, status: Status | None) -> None:
    assert STATUSES[code] is status


def test_status_request_error_is_raised(server: WireServer) -> None:
    server.respond(json={"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).statuses([StatusQuery("1-1", "+79161234567", 1)])

    assert caught.value.provider_wide
    assert_no_secret(caught.value)


def test_status_not_found_for_the_whole_request_leaves_all_out(server: WireServer) -> None:
    server.respond(json={"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"})

    assert client_for(server.url).statuses([StatusQuery("1-1", "+79161234567", 1)]) == {}


def test_status_batch_is_limited() -> None:
    queries = [StatusQuery(str(n), "+79161234567", n) for n in range(101)]
    with pytest.raises(ValueError):
        client_for("http://127.0.0.1:9").statuses(queries)


def test_no_queries_no_call(server: WireServer) -> None:
    assert client_for(server.url).statuses([]) == {}
    assert server.requests == []


# -- delivery reports --


def report_request(entries: list[str], *, hash_: str | None = "compute") -> IncomingRequest:
    form = {f"data[{n}]": [entry] for n, entry in enumerate(entries)}
    if hash_ == "compute":
        hash_ = hashlib.sha256((API_ID + "".join(entries)).encode()).hexdigest()
    if hash_ is not None:
        form["hash"] = [hash_]
    return IncomingRequest(method="POST", form=form)


def test_report_parses_sms_status_entries_and_answers_100() -> None:
    entries = ["sms_status\n000000-1\n103\n1700000000", "callcheck_status\n77\n401\n1700000000"]
    entries.append("sms_status\n000000-2\n104\n1700000001")

    parsed = client_for("http://127.0.0.1:9").parse_report(report_request(entries))

    assert [(r.provider_message_id, r.update.status, r.update.reason) for r in parsed.reports] == [
        ("000000-1", Status.DELIVERED, None),
        ("000000-2", Status.UNDELIVERED, "provider_error:104"),
    ]
    assert parsed.reports[0].update.provider_status == "103"
    assert (parsed.answer.status, parsed.answer.body) == (200, "100")
    assert parsed.answer.content_type.startswith("text/plain")


def test_report_entries_are_read_in_index_order() -> None:
    entries = [f"sms_status\n1-{n}\n102\n1700000000" for n in range(12)]
    request = report_request(entries)
    shuffled = IncomingRequest(method="POST", form=dict(reversed(list(request.form.items()))))

    parsed = client_for("http://127.0.0.1:9").parse_report(shuffled)

    assert [r.provider_message_id for r in parsed.reports] == [f"1-{n}" for n in range(12)]


def test_report_with_a_wrong_hash_is_refused() -> None:
    request = report_request(["sms_status\n1-1\n103\n1700000000"], hash_="0" * 64)

    with pytest.raises(PermanentProviderError) as caught:
        client_for("http://127.0.0.1:9").parse_report(request)

    assert caught.value.reason == "provider_error:bad_hash"
    assert_no_secret(caught.value)


def test_report_without_hash_relies_on_the_url_token() -> None:
    request = report_request(["sms_status\n1-1\n103\n1700000000"], hash_=None)

    assert len(client_for("http://127.0.0.1:9").parse_report(request).reports) == 1


def test_empty_or_foreign_report_is_acknowledged() -> None:
    client = client_for("http://127.0.0.1:9")
    for request in (
        IncomingRequest(method="POST"),
        report_request(["callback_check"]),
        report_request(["sms_status\nonly-two-lines"]),
    ):
        parsed = client.parse_report(request)
        assert parsed.reports == [] and parsed.answer.body == "100"


# -- balance --


def test_balance(server: WireServer) -> None:
    server.respond(path="/my/balance", json={"status": "OK", "status_code": 100, "balance": 4122.56})

    balance = client_for(server.url).balance()

    assert balance.amount == Decimal("4122.56") and balance.currency == "RUB"
    assert server.last.method == "POST" and server.last.form == {"api_id": [API_ID], "json": ["1"]}


def test_balance_with_a_bad_api_id(server: WireServer) -> None:
    server.respond(json={"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})

    with pytest.raises(PermanentProviderError) as caught:
        client_for(server.url).balance()

    assert caught.value.provider_wide
    assert_no_secret(caught.value)
