"""SmsTrafficClient against local servers speaking SMS Traffic's wire format (main and reserve)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from wire_server import Answer, RecordedRequest, WireServer

from smsqueue.providers.base import (
    IncomingRequest,
    LookupNotSupported,
    OutgoingSMS,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    SendResult,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
)
from smsqueue.providers.smstraffic import (
    NUMBER_CODES,
    PROVIDER_WIDE_CODES,
    STATUSES,
    TEXT_TOO_LONG_CODES,
    SmsTrafficClient,
    combine,
    error_for,
    status_update,
)
from smsqueue.statuses import Status

LOGIN = "acme"
PASSWORD = "Pa55-SECRET-word"
TEXT = "Привет, мир"
SMS = OutgoingSMS(message_id="6f1c", ref=42, to="+79161234567", text=TEXT, sender="ACME")


@pytest.fixture
def main() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


@pytest.fixture
def reserve() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_client(main_url: str, reserve_url: str | None = None, timeout: float = 0.5) -> SmsTrafficClient:
    settings = {
        "base_url": main_url,
        "reserve_url": reserve_url or main_url,
        "login": LOGIN,
        "password": PASSWORD,
    }
    return SmsTrafficClient(ProviderConfig("traffic-main", "smstraffic", settings, timeout))


def reply(
    result: str = "OK",
    code: int = 0,
    description: str = "queued 1 messages",
    infos: list[tuple[str, str, str | None]] | None = None,
    extra: str = "",
) -> str:
    """An SMS Traffic reply; `infos` are (phone, sms_id, push_id) of message_info elements."""
    body = f"<result>{result}</result><code>{code}</code><description>{description}</description>"
    if infos:
        body += "<message_infos>"
        for phone, sms_id, push_id in infos:
            push = f"<push_id>{push_id}</push_id>" if push_id is not None else ""
            body += f"<message_info><phone>{phone}</phone><sms_id>{sms_id}</sms_id>{push}</message_info>"
        body += "</message_infos>"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<reply>{body}{extra}</reply>\n'


def xml(text: str, **kwargs: object) -> dict[str, object]:
    return {"body": text.encode("utf-8"), "headers": {"Content-Type": "text/xml; charset=utf-8"}, **kwargs}


def error_reply(code: int, description: str = "error") -> dict[str, object]:
    return xml(reply("ERROR", code, description))


def sent(push_id: int = 42, sms_id: str = "1001", phone: str = "79161234567") -> dict[str, object]:
    return xml(reply(infos=[(phone, sms_id, str(push_id))]))


def assert_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert PASSWORD not in str(seen) and PASSWORD not in repr(seen)
        seen = seen.__cause__ or seen.__context__


def echo_lines(request: RecordedRequest) -> Answer:
    """Answer every line of an individual_messages request with one message_info (sms_id = 9000+ref)."""
    infos = ""
    for line in request.form["message"][0].split("\n"):
        push_id, _, rest = line.partition(":")
        phone = rest.split(" ", 1)[0]
        infos += f"<message_info><phone>{phone}</phone><sms_id>{9000 + int(push_id)}</sms_id>"
        infos += f"<push_id>{push_id}</push_id></message_info>"
    body = f"<reply><result>OK</result><code>0</code><message_infos>{infos}</message_infos></reply>"
    return Answer(body=body.encode())


# -- the class --


def test_attributes_and_defaults() -> None:
    assert SmsTrafficClient.kind == "smstraffic"
    assert SmsTrafficClient.settings_keys == {"base_url", "reserve_url", "login", "password"}
    assert SmsTrafficClient.secret_keys == {"password"}
    assert SmsTrafficClient.can_lookup is False
    assert SmsTrafficClient.pushes_reports is True
    assert SmsTrafficClient.status_window == timedelta(days=2)
    client = SmsTrafficClient(ProviderConfig("t", "smstraffic", {"login": "a", "password": "b"}))
    assert client.endpoints() == [
        "https://api.smstraffic.ru/multi.php",
        "https://api2.smstraffic.ru/multi.php",
    ]


def test_validate_settings() -> None:
    assert SmsTrafficClient.validate_settings({"login": "a", "password": "b"}) == []
    ok = {"login": "a", "password": "b", "base_url": "https://x.ru", "reserve_url": "https://y.ru"}
    assert SmsTrafficClient.validate_settings(ok) == []
    problems = SmsTrafficClient.validate_settings({"reserve_url": "ftp://x", "apikey": "k", "login": " "})
    assert {(field, code) for field, code, _ in problems} == {
        ("settings.apikey", "unknown_field"),
        ("settings.reserve_url", "invalid_url"),
        ("settings.login", "required"),
        ("settings.password", "required"),
    }


def test_lookup_is_not_supported() -> None:
    with pytest.raises(LookupNotSupported):
        make_client("http://127.0.0.1:9").lookup(SMS)


# -- send --


def test_send_posts_our_id_bound_lines_with_rus_5(main: WireServer) -> None:
    main.respond(**sent())

    result = make_client(main.url).send(SMS)

    assert result == SendResult(provider_message_id="1001")
    request = main.last
    assert request.method == "POST" and request.path == "/multi.php" and request.raw_query == ""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert PASSWORD not in request.target
    # "42:79161234567 Привет, мир" as UTF-8, percent-encoded
    assert (
        b"message=42%3A79161234567+%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%2C+%D0%BC%D0%B8%D1%80" in request.body
    )
    assert request.form == {
        "login": [LOGIN],
        "password": [PASSWORD],
        "message": [f"42:79161234567 {TEXT}"],
        "individual_messages": ["1"],
        "with_push_id": ["1"],
        "rus": ["5"],
        "want_sms_ids": ["1"],
        "gap": ["0.05"],
        "originator": ["ACME"],
    }


def test_send_without_sender_leaves_originator_out(main: WireServer) -> None:
    main.respond(**sent(push_id=7))
    make_client(main.url).send(OutgoingSMS("m", 7, "+79161234567", "hi"))
    assert "originator" not in main.last.form and main.last.form["rus"] == ["5"]


def test_a_long_text_answers_one_message_info_per_segment(main: WireServer) -> None:
    text = "Ж" * 150  # three UCS-2 segments
    infos = [("79161234567", sms_id, "42") for sms_id in ("2001", "2002", "2003")]
    main.respond(**xml(reply(infos=infos)))

    result = make_client(main.url).send(OutgoingSMS("m", 42, "+79161234567", text))

    assert result.provider_message_id == "2001,2002,2003"
    assert main.last.form["message"] == [f"42:79161234567 {text}"]


def test_send_many_binds_each_answer_by_push_id(main: WireServer) -> None:
    batch = [OutgoingSMS(f"m{i}", i, f"+7916123456{i}", f"текст {i}", "ACME") for i in (1, 2, 3)]
    # the answer lists them out of order: the push_id, not the position, binds them
    infos = [("79161234563", "303", "3"), ("79161234561", "101", "1"), ("79161234562", "202", "2")]
    main.respond(**xml(reply(infos=infos)))

    results = make_client(main.url).send_many(batch)

    assert [r.provider_message_id for r in results if isinstance(r, SendResult)] == ["101", "202", "303"]
    assert len(main.requests) == 1
    assert main.last.form["message"] == [
        "1:79161234561 текст 1\n2:79161234562 текст 2\n3:79161234563 текст 3"
    ]


def test_send_many_sends_one_request_per_sender(main: WireServer) -> None:
    main.respond_with(echo_lines)
    batch = [
        OutgoingSMS("a", 1, "+79161234561", "x", "ACME"),
        OutgoingSMS("b", 2, "+79161234562", "y", "BANK"),
        OutgoingSMS("c", 3, "+79161234563", "z", "ACME"),
    ]

    results = make_client(main.url).send_many(batch)

    assert results == [SendResult("9001"), SendResult("9002"), SendResult("9003")]
    by_sender = {r.form["originator"][0]: r.form["message"][0] for r in main.requests}
    assert by_sender == {"ACME": "1:79161234561 x\n3:79161234563 z", "BANK": "2:79161234562 y"}


def test_a_bad_number_in_a_batch_fails_only_its_message(main: WireServer) -> None:
    def answer(request: RecordedRequest) -> Answer:
        lines = request.form["message"][0].split("\n")
        if any("79990000000" in line for line in lines):  # the whole request fails, nothing is sent
            return Answer(body=reply("ERROR", 423, "Phone is incorrect. No messages has been sent").encode())
        return echo_lines(request)

    main.respond_with(answer)
    batch = [
        OutgoingSMS(f"m{i}", i, to, "текст")
        for i, to in enumerate(("+79161234561", "+79990000000", "+79161234563"), 1)
    ]

    results = make_client(main.url).send_many(batch)

    assert results[0] == SendResult("9001") and results[2] == SendResult("9003")
    bad = results[1]
    assert (
        isinstance(bad, PermanentProviderError) and bad.number_problem and bad.reason == "provider_error:423"
    )
    sent_lines = [r.form["message"][0] for r in main.requests]
    assert len(sent_lines[0].split("\n")) == 3  # the batch, then each message alone
    assert sent_lines[1:] == ["1:79161234561 текст", "2:79990000000 текст", "3:79161234563 текст"]


def test_provider_wide_error_in_a_batch_is_everyone_s_without_resending(main: WireServer) -> None:
    main.respond(**error_reply(415, "Not enough money"))
    batch = [OutgoingSMS(f"m{i}", i, f"+7916123456{i}", "x") for i in (1, 2)]

    results = make_client(main.url).send_many(batch)

    assert all(isinstance(r, PermanentProviderError) and r.provider_wide for r in results)
    assert len(main.requests) == 1


def test_numbers_and_originators_are_checked_before_any_call(main: WireServer) -> None:
    main.respond_with(echo_lines)
    batch = [
        OutgoingSMS("a", 1, "+7916", "x"),
        OutgoingSMS("b", 2, "+79161234562", "x", "ACME"),
        OutgoingSMS("c", 3, "+79161234563", "x", "123456"),
        OutgoingSMS("d", 4, "+79161234564", "x", "TWELVECHARS!"),
    ]

    results = make_client(main.url).send_many(batch)

    assert isinstance(results[0], PermanentProviderError) and results[0].number_problem
    assert results[1] == SendResult("9002")
    assert isinstance(results[2], PermanentProviderError) and results[2].code == "numeric_originator"
    assert isinstance(results[3], PermanentProviderError) and results[3].code == "originator_too_long"
    assert [r.form["message"][0] for r in main.requests] == ["2:79161234562 x"]


def test_a_text_with_a_line_break_goes_alone_by_phone(main: WireServer) -> None:
    main.respond(**xml(reply(infos=[("79161234567", "501", None), ("79161234567", "502", None)])))
    text = TEXT.replace(" ", "\n")

    result = make_client(main.url).send(OutgoingSMS("m", 42, "+79161234567", text, "ACME"))

    assert result.provider_message_id == "501,502"
    form = main.last.form
    assert form["phones"] == ["79161234567"] and form["message"] == [text]
    assert "individual_messages" not in form and form["rus"] == ["5"] and form["want_sms_ids"] == ["1"]


def test_send_many_refuses_more_than_a_batch() -> None:
    with pytest.raises(ValueError):
        make_client("http://127.0.0.1:9").send_many([SMS] * 51)


# -- every documented code --

ALL_CODES = sorted({1000, 411, 412, 415, 418, 436, 400, 401, 999, *TEXT_TOO_LONG_CODES, *NUMBER_CODES})


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_code_on_the_wire(main: WireServer, code: int) -> None:
    main.respond(**error_reply(code))
    with pytest.raises(ProviderError) as caught:
        make_client(main.url).send(SMS)
    error = caught.value
    assert error.reason == f"provider_error:{code}"
    assert_no_secret(error)
    if code in (1000, 418):
        assert isinstance(error, TransientProviderError) and not error.may_have_sent
        return
    assert isinstance(error, PermanentProviderError)
    assert error.provider_wide is (code in PROVIDER_WIDE_CODES)
    assert error.number_problem is (code in NUMBER_CODES)


def test_code_table() -> None:
    assert {411, 412, 415} == PROVIDER_WIDE_CODES
    assert {422, 423, 425, 426, 427, 428, 429, 430, 431, 432} == NUMBER_CODES
    assert {420, 424, 437} == TEXT_TOO_LONG_CODES
    assert isinstance(error_for(436), PermanentProviderError) and not error_for(436).provider_wide
    assert error_for(None).reason == "provider_error:error"


# -- the reserve endpoint --


def test_code_1000_goes_to_the_reserve(main: WireServer, reserve: WireServer) -> None:
    main.respond(**error_reply(1000, "Temporary error"))
    reserve.respond(**sent(sms_id="7777"))

    result = make_client(main.url, reserve.url).send(SMS)

    assert result.provider_message_id == "7777"
    assert main.last.body == reserve.last.body  # the same request, to the reserve
    assert len(main.requests) == 1 and len(reserve.requests) == 1


def test_1000_at_both_is_transient(main: WireServer, reserve: WireServer) -> None:
    main.respond(**error_reply(1000))
    reserve.respond(**error_reply(1000))
    with pytest.raises(TransientProviderError) as caught:
        make_client(main.url, reserve.url).send(SMS)
    assert caught.value.code == "1000" and not caught.value.may_have_sent


def test_unreachable_main_goes_to_the_reserve(reserve: WireServer) -> None:
    reserve.respond(**sent())
    assert make_client(closed_port_url(), reserve.url).send(SMS).provider_message_id == "1001"
    assert reserve.last.form["message"] == [f"42:79161234567 {TEXT}"]


def test_http_500_at_main_goes_to_the_reserve(main: WireServer, reserve: WireServer) -> None:
    main.respond(status=500, body="oops")
    reserve.respond(**sent())
    assert make_client(main.url, reserve.url).send(SMS).provider_message_id == "1001"


def test_both_unreachable_is_transient_and_not_sent() -> None:
    with pytest.raises(TransientProviderError) as caught:
        make_client(closed_port_url(), closed_port_url()).send(SMS)
    assert not caught.value.may_have_sent


def test_a_timed_out_send_is_ambiguous_and_never_sent_to_the_reserve(
    main: WireServer, reserve: WireServer
) -> None:
    main.respond(**sent(), delay=1.0)
    reserve.respond(**sent())

    with pytest.raises(TransientProviderError) as caught:
        make_client(main.url, reserve.url, timeout=0.2).send(SMS)

    assert caught.value.may_have_sent and caught.value.reason == "provider_error:timeout"
    assert reserve.requests == []


def test_a_dropped_send_is_ambiguous_and_never_sent_to_the_reserve(
    main: WireServer, reserve: WireServer
) -> None:
    main.respond(drop=True)
    with pytest.raises(TransientProviderError) as caught:
        make_client(main.url, reserve.url).send(SMS)
    assert caught.value.may_have_sent and reserve.requests == []


def test_a_timed_out_status_call_is_asked_at_the_reserve(main: WireServer, reserve: WireServer) -> None:
    main.respond(body="", delay=1.0)
    reserve.respond(**xml(reply(extra="<sms><sms_id>1001</sms_id><status>Delivered</status></sms>")))
    found = make_client(main.url, reserve.url, timeout=0.2).statuses([StatusQuery("1001", SMS.to, 42)])
    assert found["1001"].status is Status.DELIVERED


# -- answers we cannot use --


@pytest.mark.parametrize(
    "body",
    [
        "not xml",
        "<reply><result>OK</result>",
        '<!DOCTYPE r [<!ENTITY a "aaaa">]><reply><result>OK</result></reply>',
        "<html><body>gateway</body></html>",
    ],
)
def test_an_unreadable_send_answer_may_have_sent(main: WireServer, body: str) -> None:
    main.respond(body=body)
    with pytest.raises(TransientProviderError) as caught:
        make_client(main.url).send(SMS)
    assert caught.value.may_have_sent and caught.value.code == "bad_answer"


def test_an_ok_answer_without_our_push_id_may_have_sent(main: WireServer) -> None:
    main.respond(**xml(reply(infos=[("79160000000", "1", "77")])))
    with pytest.raises(TransientProviderError) as caught:
        make_client(main.url).send(SMS)
    assert caught.value.may_have_sent


@pytest.mark.parametrize("status", [302, 404])
def test_http_redirect_or_404_is_provider_wide(main: WireServer, status: int) -> None:
    main.respond(status=status, headers={"Location": "http://elsewhere/"})
    with pytest.raises(PermanentProviderError) as caught:
        make_client(main.url).send(SMS)
    assert caught.value.provider_wide


# -- statuses --


def status_item(sms_id: str, status: str) -> str:
    return f"<sms><sms_id>{sms_id}</sms_id><status>{status}</status><error></error></sms>"


def test_statuses_ask_every_segment_in_one_call_and_combine_them(main: WireServer) -> None:
    items = (
        status_item("11", "Delivered") + status_item("21", "Delivered") + status_item("22", "Buffered SMSC")
    )
    items += status_item("31", "Delivered") + status_item("32", "Non Delivered")
    main.respond(**xml(reply(extra=items)))
    queries = [StatusQuery("11", "+79161234561", 1), StatusQuery("21,22", "+79161234562", 2)]
    queries += [StatusQuery("31,32", "+79161234563", 3), StatusQuery("41", "+79161234564", 4)]

    found = make_client(main.url).statuses(queries)

    assert main.last.form == {
        "login": [LOGIN],
        "password": [PASSWORD],
        "operation": ["status"],
        "sms_id": ["11,21,22,31,32,41"],
    }
    assert found["11"].status is Status.DELIVERED
    assert found["21,22"].status is None  # a segment still on its way
    assert found["31,32"] == StatusUpdate(Status.UNDELIVERED, "provider_error:non_delivered", "Non Delivered")
    assert "41" not in found  # not reported: left out


def test_a_single_status_answer_is_read_from_the_reply_itself(main: WireServer) -> None:
    main.respond(**xml("<reply><sms_id>11</sms_id><status>Rejected</status><error>1</error></reply>"))
    found = make_client(main.url).statuses([StatusQuery("11", SMS.to, 1)])
    assert found == {"11": StatusUpdate(Status.FAILED, "provider_error:rejected", "Rejected")}


def test_no_such_message_stops_and_a_refused_batch_is_asked_again_one_by_one(main: WireServer) -> None:
    def answer(request: RecordedRequest) -> Answer:
        ids = request.form["sms_id"][0].split(",")
        if "99" in ids:
            return Answer(body=reply("ERROR", 401, "no such message").encode())
        return Answer(body=reply(extra="".join(status_item(i, "Delivered") for i in ids)).encode())

    main.respond_with(answer)
    queries = [StatusQuery("11", "+79161234561", 1), StatusQuery("99", "+79161234562", 2)]

    found = make_client(main.url).statuses(queries)

    assert set(found) == {"11"}
    assert [parse_qs(r.body.decode())["sms_id"][0] for r in main.requests] == ["11,99", "11", "99"]


def test_other_status_errors_are_raised(main: WireServer) -> None:
    main.respond(**error_reply(411, "Authorization failed"))
    with pytest.raises(PermanentProviderError) as caught:
        make_client(main.url).statuses([StatusQuery("11", SMS.to, 1)])
    assert caught.value.provider_wide


def test_statuses_refuse_more_than_a_batch() -> None:
    with pytest.raises(ValueError):
        make_client("http://127.0.0.1:9").statuses([StatusQuery(str(i), SMS.to, i) for i in range(51)])


@pytest.mark.parametrize(("text", "status"), [(k.title(), v) for k, v in STATUSES.items()])
def test_every_documented_status(text: str, status: Status | None) -> None:
    update = status_update(text)
    assert update.status is status
    if status in (Status.UNDELIVERED, Status.FAILED):
        assert update.reason == "provider_error:" + text.lower().replace(" ", "_")
    else:
        assert update.reason is None


def test_an_undocumented_status_stays_in_progress() -> None:
    assert status_update("Teleported") == StatusUpdate(None, None, "Teleported")


def test_combine() -> None:
    delivered, waiting = StatusUpdate(Status.DELIVERED), StatusUpdate(None)
    failed = StatusUpdate(Status.FAILED, "provider_error:rejected")
    assert combine([delivered, delivered]) is delivered
    assert combine([delivered, None]) == waiting
    assert combine([waiting, failed]) is failed
    assert combine([None, None]) is None


# -- reports --


def test_parse_report_reads_the_form_and_answers_200() -> None:
    request = IncomingRequest(
        "POST", form={"sms_id": ["1001"], "status": ["Delivered"], "delivery_date": ["2026-12-02 21:10:00"]}
    )
    parsed = make_client("http://127.0.0.1:9").parse_report(request)
    assert [(r.provider_message_id, r.update.status, r.ref) for r in parsed.reports] == [
        ("1001", Status.DELIVERED, None)
    ]
    assert parsed.answer.status == 200 and parsed.answer.body == "OK"


@pytest.mark.parametrize("form", [{}, {"sms_id": ["1"]}, {"status": ["Delivered"]}])
def test_parse_report_without_id_or_status_has_no_report(form: dict[str, list[str]]) -> None:
    parsed = make_client("http://127.0.0.1:9").parse_report(IncomingRequest("POST", form=form))
    assert parsed.reports == [] and parsed.answer.status == 200


# -- balance --


def test_balance(main: WireServer) -> None:
    main.respond(**xml("<reply><account>1234.56</account></reply>"))
    balance = make_client(main.url).balance()
    assert balance.amount == Decimal("1234.56") and balance.currency == "RUB"
    assert main.last.form == {"login": [LOGIN], "password": [PASSWORD], "operation": ["account"]}


def test_balance_error_is_provider_wide_without_secrets(main: WireServer) -> None:
    main.respond(**error_reply(411, f"Authorization failed for {LOGIN}"))
    with pytest.raises(PermanentProviderError) as caught:
        make_client(main.url).balance()
    assert caught.value.provider_wide
    assert_no_secret(caught.value)


def test_config_repr_hides_secrets() -> None:
    assert PASSWORD not in repr(make_client("http://127.0.0.1:9").config)


def test_a_batch_too_long_for_5_minutes_is_sent_one_by_one(main: WireServer) -> None:
    def answer(request: RecordedRequest) -> Answer:
        if "\n" in request.form["message"][0]:
            return Answer(body=reply("ERROR", 418, "Request would take too long").encode())
        return echo_lines(request)

    main.respond_with(answer)
    batch = [OutgoingSMS(f"m{i}", i, f"+7916123456{i}", "x") for i in (1, 2)]

    assert make_client(main.url).send_many(batch) == [SendResult("9001"), SendResult("9002")]
    assert len(main.requests) == 3
