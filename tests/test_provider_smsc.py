"""SmscClient against a recording wire server: the exact requests it makes and how it reads answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal

import pytest
from wire_server import WireServer

from smsqueue.providers import client_class
from smsqueue.providers.base import (
    Balance,
    IncomingRequest,
    InvalidNumber,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    StatusQuery,
    TransientProviderError,
)
from smsqueue.providers.smsc import SmscClient, list_param, status_update, valid_param
from smsqueue.statuses import Status

PASSWORD = "s3cret-Pa55"
APIKEY = "K3Y-abcdef0123456789"
SEND = "/sys/send.php"
STATUS = "/sys/status.php"
BALANCE = "/sys/balance.php"
HELLO_RU = "Привет, мир"
HELLO_RU_WIRE = "%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%2C+%D0%BC%D0%B8%D1%80"


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def make_client(url: str, *, timeout: float = 2.0, **settings: str) -> SmscClient:
    settings = settings or {"login": "acme", "password": PASSWORD}
    return SmscClient(ProviderConfig("smsc-main", "smsc", {"base_url": url, **settings}, timeout=timeout))


def sms(**overrides: object) -> OutgoingSMS:
    fields: dict[str, object] = {
        "message_id": "6f1c0000-0000-4000-8000-000000000001",
        "ref": 42,
        "to": "+79161234567",
        "text": HELLO_RU,
        "sender": "ACME",
        "ttl_seconds": 5400,
    }
    fields.update(overrides)
    return OutgoingSMS(**fields)  # type: ignore[arg-type]


def assert_no_secret(exc: BaseException) -> None:
    """Neither the error nor anything chained to it may carry a secret (tracebacks print the chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen), repr(seen.args)):
            assert PASSWORD not in text
            assert APIKEY not in text
        seen = seen.__cause__ or seen.__context__


# --- registry and settings -------------------------------------------------------------------------------


def test_registry_finds_the_smsc_client() -> None:
    assert client_class("smsc") is SmscClient
    assert SmscClient.can_lookup is True
    assert SmscClient.secret_keys == {"password", "apikey"}


@pytest.mark.parametrize(
    "settings",
    [
        {"login": "acme", "password": "x"},
        {"apikey": "k"},
        {"base_url": "https://smsc.ru", "apikey": "k"},
    ],
)
def test_validate_settings_accepts_login_password_or_apikey(settings: dict[str, str]) -> None:
    assert SmscClient.validate_settings(settings) == []


def test_validate_settings_needs_credentials() -> None:
    problems = SmscClient.validate_settings({"login": "acme"})
    assert [(field, code) for field, code, _ in problems] == [("settings.password", "required")]
    problems = SmscClient.validate_settings({})
    assert {field for field, _, _ in problems} == {"settings.login", "settings.password"}


def test_validate_settings_refuses_unknown_keys_and_bad_urls() -> None:
    problems = SmscClient.validate_settings({"apikey": "k", "token": "x", "base_url": "ftp://smsc.ru"})
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.token", "unknown_field"),
        ("settings.base_url", "invalid_url"),
    }
    problems = SmscClient.validate_settings({"apikey": 5})
    assert ("settings.apikey", "invalid_type") in {(field, code) for field, code, _ in problems}


# --- send: the request ------------------------------------------------------------------------------------


def test_send_posts_every_parameter_as_utf8_form(server: WireServer) -> None:
    server.respond(path=SEND, json={"id": 42, "cnt": 2, "cost": "3.70", "balance": "96.30"})

    result = make_client(server.url).send(sms())

    request = server.last
    assert request.method == "POST"
    assert request.path == SEND
    assert request.raw_query == ""  # nothing, secrets least of all, in the URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "login": ["acme"],
        "psw": [PASSWORD],
        "phones": ["+79161234567"],
        "mes": [HELLO_RU],
        "id": ["42"],
        "cost": ["3"],
        "sender": ["ACME"],
        "valid": ["01:30"],
        "fmt": ["3"],
        "charset": ["utf-8"],
    }
    assert f"mes={HELLO_RU_WIRE}".encode() in request.body  # UTF-8 bytes, percent-encoded
    assert result.provider_message_id == "42"
    assert result.cost == Decimal("3.70")
    assert result.update is None


def test_send_with_apikey_sends_no_login(server: WireServer) -> None:
    server.respond(path=SEND, json={"id": 42, "cnt": 1})

    make_client(server.url, apikey=APIKEY).send(sms(sender=None, ttl_seconds=None))

    form = server.last.form
    assert form["apikey"] == [APIKEY]
    assert "login" not in form and "psw" not in form
    assert "sender" not in form and "valid" not in form


@pytest.mark.parametrize(
    ("ttl", "valid"), [(1, "00:01"), (59, "00:01"), (61, "00:01"), (5400, "01:30"), (3 * 86400, "24:00")]
)
def test_valid_is_hh_mm_rounded_down_within_a_day(ttl: int, valid: str) -> None:
    assert valid_param(ttl) == valid


def test_list_param_keeps_the_list_form_for_one_value() -> None:
    assert list_param(["7"]) == "7,"
    assert list_param(["7", "8"]) == "7,8"


@pytest.mark.parametrize("ref", [0, 2_147_483_648])
def test_ref_outside_smsc_id_range_is_refused_before_any_call(server: WireServer, ref: int) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(sms(ref=ref))
    # This message's matter, not the account's: it fails over, and the provider is not paused.
    assert caught.value.provider_wide is False
    assert server.requests == []


def test_text_over_smsc_limit_is_refused_before_any_call(server: WireServer) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(sms(text="я" * 1001))
    assert (caught.value.code, caught.value.number_problem, caught.value.provider_wide) == (
        "text_too_long",
        False,
        False,
    )
    assert caught.value.reason == "text_too_long"  # ours, not dressed up as a provider's code
    assert server.requests == []


# --- send: errors -----------------------------------------------------------------------------------------

ERROR_CASES = [
    # code, type, number_problem, provider_wide, may_have_sent
    (1, PermanentProviderError, False, False, None),
    (2, PermanentProviderError, False, True, None),
    (3, PermanentProviderError, False, True, None),
    (4, TransientProviderError, None, True, False),  # our address blocked: the provider is paused
    (5, PermanentProviderError, False, False, None),
    (6, PermanentProviderError, False, False, None),
    (7, InvalidNumber, True, False, None),
    (8, PermanentProviderError, False, False, None),
    (9, TransientProviderError, None, None, True),
    (99, PermanentProviderError, False, False, None),
]


@pytest.mark.parametrize(("code", "kind", "number_problem", "provider_wide", "may_have_sent"), ERROR_CASES)
def test_send_error_codes_map_to_our_errors(
    server: WireServer,
    code: int,
    kind: type[ProviderError],
    number_problem: bool | None,
    provider_wide: bool | None,
    may_have_sent: bool | None,
) -> None:
    server.respond(path=SEND, json={"error": "описание", "error_code": code, "id": 42})

    with pytest.raises(ProviderError) as caught:
        make_client(server.url).send(sms())

    exc = caught.value
    assert type(exc) is kind
    assert exc.code == str(code)  # SMSC's own code, kept for the event detail
    assert exc.reason == ("invalid_number" if code == 7 else f"provider_error:{code}")
    if isinstance(exc, PermanentProviderError):
        assert (exc.number_problem, exc.provider_wide) == (number_problem, provider_wide)
    else:
        assert isinstance(exc, TransientProviderError)
        assert exc.may_have_sent is may_have_sent
        assert exc.retry_after == 60.0
        assert exc.provider_wide is bool(provider_wide)
    assert_no_secret(exc)


def test_send_timeout_may_have_sent(server: WireServer) -> None:
    server.respond(path=SEND, json={"id": 42, "cnt": 1}, delay=3.0)

    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url, timeout=0.2).send(sms())

    assert caught.value.may_have_sent is True
    assert caught.value.reason == "provider_error:timeout"
    assert len(server.requests) == 1  # the request did go out
    assert_no_secret(caught.value)


def test_connection_refused_is_transient_and_not_sent() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(TransientProviderError) as caught:
        make_client(f"http://127.0.0.1:{port}").send(sms())

    assert caught.value.may_have_sent is False
    assert caught.value.code == "connection_failed"
    assert_no_secret(caught.value)


def test_dropped_connection_after_the_request_may_have_sent(server: WireServer) -> None:
    server.respond(path=SEND, drop=True)

    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(sms())

    assert caught.value.may_have_sent is True
    assert_no_secret(caught.value)


def test_http_500_is_transient_and_not_sent(server: WireServer) -> None:
    server.respond(path=SEND, status=500, body="oops")

    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(sms())

    assert caught.value.may_have_sent is False
    assert caught.value.code == "http_500"
    assert_no_secret(caught.value)


def test_http_429_carries_retry_after(server: WireServer) -> None:
    server.respond(path=SEND, status=429, headers={"Retry-After": "7"})

    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(sms())

    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [302, 404])
def test_http_redirect_or_404_is_a_provider_wide_problem(server: WireServer, status: int) -> None:
    server.respond(path=SEND, status=status, headers={"Location": "https://example.invalid/"})

    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url).send(sms())

    assert caught.value.provider_wide is True
    assert len(server.requests) == 1  # the redirect was not followed


@pytest.mark.parametrize("body", ["<html>gateway</html>", '{"cnt": 1}'])
def test_unreadable_send_answer_may_have_sent(server: WireServer, body: str) -> None:
    server.respond(path=SEND, body=body)

    with pytest.raises(TransientProviderError) as caught:
        make_client(server.url).send(sms())

    assert caught.value.may_have_sent is True
    assert caught.value.code == "bad_answer"


# --- statuses ---------------------------------------------------------------------------------------------


def queries(*pairs: tuple[str, str]) -> list[StatusQuery]:
    return [StatusQuery(provider_message_id=pid, to=to, ref=int(pid)) for pid, to in pairs]


def test_statuses_batch_request_and_mapping(server: WireServer) -> None:
    server.respond(
        path=STATUS,
        json=[
            {"status": 1, "last_date": "26.11.2026 21:40:00", "last_timestamp": 1795722000, "err": 0,
             "id": 1, "phone": "79161234567"},
            {"status": 20, "last_date": "26.11.2026 21:40:00", "last_timestamp": 1795722000, "err": 6,
             "id": 2, "phone": "79161234568"},
            {"status": -3, "id": 3, "phone": "79161234569"},
            {"status": 0, "err": 0, "id": 4, "phone": "79161234560"},
        ],
    )  # fmt: skip
    asked = queries(
        ("1", "+79161234567"), ("2", "+79161234568"), ("3", "+79161234569"), ("4", "+79161234560")
    )

    updates = make_client(server.url).statuses(asked)

    request = server.last
    assert (request.method, request.path, request.raw_query) == ("POST", STATUS, "")
    assert request.form == {
        "login": ["acme"],
        "psw": [PASSWORD],
        "id": ["1,2,3,4"],
        "phone": ["+79161234567,+79161234568,+79161234569,+79161234560"],
        "fmt": ["3"],
        "charset": ["utf-8"],
    }
    assert set(updates) == {"1", "2", "4"}  # 3 is unknown to SMSC: left out
    assert (updates["1"].status, updates["1"].reason, updates["1"].provider_status) == (
        Status.DELIVERED,
        None,
        "1",
    )
    assert (updates["2"].status, updates["2"].reason, updates["2"].provider_status) == (
        Status.UNDELIVERED,
        "provider_error:20",
        "20;err=6",
    )
    assert updates["4"].status is None


def test_statuses_single_query_keeps_the_list_form(server: WireServer) -> None:
    server.respond(path=STATUS, json=[{"status": 22, "err": 1, "id": 5, "phone": "79161234567"}])

    updates = make_client(server.url).statuses(queries(("5", "+79161234567")))

    assert server.last.form["id"] == ["5,"]
    assert server.last.form["phone"] == ["+79161234567,"]
    assert updates["5"].status is Status.FAILED
    assert updates["5"].reason == "invalid_number"
    assert updates["5"].provider_status == "22;err=1"  # SMSC's own code, kept for the event detail


def test_statuses_answer_without_ids_is_matched_by_position(server: WireServer) -> None:
    server.respond(path=STATUS, json={"status": 1, "last_timestamp": 1795722000, "err": 0})

    updates = make_client(server.url).statuses(queries(("5", "+79161234567")))

    assert updates["5"].status is Status.DELIVERED


def test_statuses_refuses_more_than_a_batch(server: WireServer) -> None:
    too_many = queries(*[(str(i), "+79161234567") for i in range(1, SmscClient.status_batch_size + 2)])
    with pytest.raises(ValueError):
        make_client(server.url).statuses(too_many)
    assert make_client(server.url).statuses([]) == {}
    assert server.requests == []


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (-2, None, None),
        (-1, None, None),
        (0, None, None),
        (1, Status.DELIVERED, None),
        (2, Status.DELIVERED, None),
        (3, Status.UNDELIVERED, "provider_error:3"),
        (4, Status.DELIVERED, None),
        (20, Status.UNDELIVERED, "provider_error:20"),
        (22, Status.FAILED, "invalid_number"),  # "bad number"
        (23, Status.FAILED, "provider_error:23"),
        (24, Status.FAILED, "provider_error:24"),
        (25, Status.UNDELIVERED, "provider_error:25"),
        (77, None, None),
    ],
)
def test_every_documented_status_maps(code: int, status: Status | None, reason: str | None) -> None:
    update = status_update({"status": code, "err": 0})
    assert (update.status, update.reason, update.provider_status) == (status, reason, str(code))


@pytest.mark.parametrize(
    ("code", "kind", "provider_wide"),
    [
        (2, PermanentProviderError, True),
        (9, TransientProviderError, False),
        (4, TransientProviderError, True),
    ],
)
def test_status_call_errors(
    server: WireServer, code: int, kind: type[ProviderError], provider_wide: bool | None
) -> None:
    server.respond(path=STATUS, json={"error": "x", "error_code": code})

    with pytest.raises(ProviderError) as caught:
        make_client(server.url).statuses(queries(("5", "+79161234567")))

    assert type(caught.value) is kind
    if isinstance(caught.value, PermanentProviderError):
        assert caught.value.provider_wide is provider_wide
    else:
        assert isinstance(caught.value, TransientProviderError)
        assert caught.value.may_have_sent is False  # a status query sends nothing
        assert caught.value.provider_wide is provider_wide
    assert_no_secret(caught.value)


# --- lookup by our ref ------------------------------------------------------------------------------------


def test_lookup_asks_by_our_ref_and_phone(server: WireServer) -> None:
    server.respond(path=STATUS, json=[{"status": 0, "err": 0, "id": 42, "phone": "79161234567"}])

    found = make_client(server.url).lookup(sms())

    assert server.last.form["id"] == ["42,"]
    assert server.last.form["phone"] == ["+79161234567,"]
    assert found is not None
    assert found.provider_message_id == "42"
    assert found.update is not None and found.update.status is None


@pytest.mark.parametrize("answer", [[{"status": -3, "id": 42, "phone": "79161234567"}], {"status": -3}, []])
def test_lookup_not_found_is_none(server: WireServer, answer: object) -> None:
    server.respond(path=STATUS, json=answer)
    assert make_client(server.url).lookup(sms()) is None


def test_lookup_delivered(server: WireServer) -> None:
    server.respond(path=STATUS, json=[{"status": 1, "err": 0, "id": 42, "phone": "79161234567"}])
    found = make_client(server.url).lookup(sms())
    assert found is not None and found.update is not None
    assert found.update.status is Status.DELIVERED


# --- delivery reports -------------------------------------------------------------------------------------


def test_parse_report_reads_smsc_form_fields() -> None:
    client = make_client("http://127.0.0.1:9")
    request = IncomingRequest(
        method="POST",
        form={"id": ["42"], "phone": ["79161234567"], "status": ["20"], "err": ["1"]},
    )

    parsed = client.parse_report(request)

    assert len(parsed.reports) == 1
    report = parsed.reports[0]
    assert (report.provider_message_id, report.ref) == ("42", 42)
    assert (report.update.status, report.update.reason, report.update.provider_status) == (
        Status.UNDELIVERED,
        "provider_error:20",
        "20;err=1",
    )
    assert (parsed.answer.status, parsed.answer.body) == (200, "OK")


def test_parse_report_accepts_query_parameters_too() -> None:
    client = make_client("http://127.0.0.1:9")
    parsed = client.parse_report(
        IncomingRequest(method="GET", args={"id": ["7"], "phone": ["7916"], "status": ["1"], "err": ["0"]})
    )
    assert parsed.reports[0].update.status is Status.DELIVERED


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"id": ["42"]},  # not a status report (incoming messages come to the same handler)
        {"id": ["42"], "status": ["-3"]},
        {"status": ["1"]},
    ],
)
def test_parse_report_ignores_what_is_not_a_status(form: dict[str, list[str]]) -> None:
    parsed = make_client("http://127.0.0.1:9").parse_report(IncomingRequest(method="POST", form=form))
    assert parsed.reports == []
    assert parsed.answer.status == 200


# --- balance ----------------------------------------------------------------------------------------------


def test_balance_request_and_answer(server: WireServer) -> None:
    server.respond(path=BALANCE, json={"balance": "100.01", "currency": "RUB"})

    balance = make_client(server.url).balance()

    assert balance == Balance(amount=Decimal("100.01"), currency="RUB")
    assert server.last.method == "POST"
    assert server.last.form == {
        "login": ["acme"],
        "psw": [PASSWORD],
        "cur": ["1"],
        "fmt": ["3"],
        "charset": ["utf-8"],
    }


def test_balance_without_currency_is_rub(server: WireServer) -> None:
    server.respond(path=BALANCE, json={"balance": "5.5"})
    assert make_client(server.url).balance() == Balance(amount=Decimal("5.5"), currency="RUB")


def test_balance_error_is_raised_without_secrets(server: WireServer) -> None:
    server.respond(path=BALANCE, json={"error": "authorise error", "error_code": 2})

    with pytest.raises(PermanentProviderError) as caught:
        make_client(server.url, apikey=APIKEY).balance()

    assert caught.value.provider_wide is True
    assert_no_secret(caught.value)


def test_config_repr_hides_secrets() -> None:
    client = make_client("http://127.0.0.1:9")
    assert PASSWORD not in repr(client.config)
