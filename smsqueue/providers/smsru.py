"""SMS.ru client (kind "smsru").

Wire facts (https://sms.ru/api, checked against the official PHP callback example and public SDKs):

- `POST {base_url}/sms/send`, `/sms/status`, `/my/balance`, form-encoded UTF-8; `api_id` and `json=1` in every
  body (never in the URL, so the key stays out of proxy and access logs).
- Send: `to` (digits, no "+"), `msg`, optional `from` (sender) and `ttl` (minutes, 1 to 1440). The answer:
  `{"status": "OK", "status_code": 100, "sms": {"79161234567": {"status": "OK", "status_code": 100,
  "sms_id": "000000-10000000"}}, "balance": 10}`. A request-level failure is `{"status": "ERROR",
  "status_code": 200, "status_text": "..."}`; a number-level one is `"status": "ERROR"` with its
  `status_code` inside that number's `sms` entry of an otherwise OK answer.
- Status: `sms_id` as a comma list (up to 100); the answer has one entry per id under `sms`, each with its
  `status_code` (-1: not found).
- Balance: `{"status": "OK", "status_code": 100, "balance": 4122.56}` in roubles.
- Delivery reports are configured per account (cabinet or `/callback/add`), not per message, so `send` does
  not pass our report URL. SMS.ru POSTs form fields `data[0]`, `data[1]`, ..., each
  `"sms_status\\n<sms_id>\\n<status_code>\\n<unix time>"` (other types such as `callcheck_status` are
  ignored), and `hash` = sha256(api_id + the data entries joined in order). It wants the plain text `100`.
- SMS.ru cannot find a message by an id of ours (there is no client id), so `lookup` is not supported.
- Not used: `test=1` (accepted and answered as usual, nothing is sent or charged) and `partner_id` (an
  integrator's affiliate id); neither is a setting of this kind.

Request and number error codes (REQUEST_ERRORS has each code's meaning):

| codes | raised as |
|---|---|
| 200 bad api_id, 201 no funds, 300-302 bad login | permanent, provider_wide |
| 204 sender not approved (a sender name's refusal: another provider may know it) | permanent |
| 202 bad recipient number | InvalidNumber (reason invalid_number, the code kept) |
| 209 in our stop list, 215 in SMS.ru's spam stop list | permanent, number_problem |
| 203, 205, 207 no route, 208, 210-214, 216, 303, 507, 901, 902, and any code not listed | permanent |
| 206, 220, 230-233, 304, 305, 500-506, 508 (limits, unavailable, server error) | transient |

Message status codes (STATUSES), reason `provider_error:<code>` on failures:

| codes | our status |
|---|---|
| 100, 101, 102 (queued, passing to the operator, sent) | None (in progress) |
| 103 delivered, 110 read | delivered |
| 104 expired, 105 deleted by the operator, 106 handset failure, 107 unknown reason | undelivered |
| 108 rejected, 150 no route, 130-132 per-number limits (older docs) | failed |
| -1 not found | left out |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from smsqueue.errors import FieldCode
from smsqueue.providers.base import (
    Balance,
    IncomingRequest,
    InvalidNumber,
    OutgoingSMS,
    ParsedReports,
    PermanentProviderError,
    ProviderClient,
    ProviderError,
    Report,
    ReportAnswer,
    SendResult,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
)
from smsqueue.statuses import Status, provider_error


class ErrorKind(Enum):
    ACCOUNT = "account"  # the account is the problem: permanent, fail over at once
    NUMBER = "number"  # the recipient is the problem: permanent, no failover
    REQUEST = "request"  # this request cannot succeed here: permanent
    LATER = "later"  # a limit or an outage: transient


REQUEST_ERRORS: dict[int, tuple[ErrorKind, str]] = {
    200: (ErrorKind.ACCOUNT, "bad api_id"),
    201: (ErrorKind.ACCOUNT, "not enough funds"),
    202: (ErrorKind.NUMBER, "bad recipient number"),
    203: (ErrorKind.REQUEST, "no message text"),
    204: (ErrorKind.REQUEST, "sender not approved or operator not enabled"),
    205: (ErrorKind.REQUEST, "message too long (over 8 parts)"),
    206: (ErrorKind.LATER, "daily sending limit reached"),
    207: (ErrorKind.REQUEST, "no route to this number"),
    208: (ErrorKind.REQUEST, "bad time parameter"),
    209: (ErrorKind.NUMBER, "number is in the account's stop list"),
    210: (ErrorKind.REQUEST, "GET used where POST is required"),
    211: (ErrorKind.REQUEST, "method not found"),
    212: (ErrorKind.REQUEST, "text is not UTF-8"),
    213: (ErrorKind.REQUEST, "too many recipients"),
    214: (ErrorKind.REQUEST, "foreign number while the account sends to Russian numbers only"),
    215: (ErrorKind.NUMBER, "number is in SMS.ru's spam stop list"),
    216: (ErrorKind.REQUEST, "forbidden word in the text"),
    220: (ErrorKind.LATER, "service temporarily unavailable"),
    230: (ErrorKind.LATER, "daily limit of messages to this number"),
    231: (ErrorKind.LATER, "limit of identical messages to this number per minute"),
    232: (ErrorKind.LATER, "limit of identical messages to this number per day"),
    233: (ErrorKind.LATER, "limit of repeated code messages to this number"),
    300: (ErrorKind.ACCOUNT, "bad token"),
    301: (ErrorKind.ACCOUNT, "bad api_id or login"),
    302: (ErrorKind.ACCOUNT, "account not confirmed"),
    303: (ErrorKind.REQUEST, "bad confirmation code"),
    304: (ErrorKind.LATER, "too many confirmation codes"),
    305: (ErrorKind.LATER, "too many wrong codes"),
    500: (ErrorKind.LATER, "server error"),
    501: (ErrorKind.LATER, "limit: TOR address"),
    502: (ErrorKind.LATER, "limit: address country mismatch"),
    503: (ErrorKind.LATER, "limit: too many messages to this country"),
    504: (ErrorKind.LATER, "limit: too many foreign codes"),
    505: (ErrorKind.LATER, "limit: too many messages from one address"),
    506: (ErrorKind.LATER, "limit: hosting address"),
    507: (ErrorKind.REQUEST, "bad user IP address"),
    508: (ErrorKind.LATER, "limit: too many calls"),
    901: (ErrorKind.REQUEST, "bad callback URL"),
    902: (ErrorKind.REQUEST, "callback handler not found"),
}

BAD_NUMBER_CODES = frozenset({202})  # the NUMBER errors that say the number itself is wrong

NOT_FOUND = -1
STATUSES: dict[int, Status | None] = {
    100: None,
    101: None,
    102: None,
    103: Status.DELIVERED,
    110: Status.DELIVERED,
    104: Status.UNDELIVERED,
    105: Status.UNDELIVERED,
    106: Status.UNDELIVERED,
    107: Status.UNDELIVERED,
    108: Status.FAILED,
    130: Status.FAILED,
    131: Status.FAILED,
    132: Status.FAILED,
    150: Status.FAILED,
}

MAX_TTL_MINUTES = 1440
REPORT_ANSWER = ReportAnswer(body="100", status=200, content_type="text/plain; charset=utf-8")
_DATA_KEY = re.compile(r"^data\[(\d*)\]$")


def error_for_code(code: int) -> ProviderError:
    """Our error for an SMS.ru request or number error code (the provider's text is not kept: ours is
    enough and cannot carry anything unexpected into logs)."""
    kind, meaning = REQUEST_ERRORS.get(code, (ErrorKind.REQUEST, "unknown error code"))
    message = f"SMS.ru error {code}: {meaning}"
    if kind is ErrorKind.LATER:
        return TransientProviderError(message, code=code)
    if code in BAD_NUMBER_CODES:
        return InvalidNumber(message, code=code)
    return PermanentProviderError(
        message,
        code=code,
        number_problem=kind is ErrorKind.NUMBER,
        provider_wide=kind is ErrorKind.ACCOUNT,
    )


def status_update(code: int) -> StatusUpdate:
    status = STATUSES.get(code)
    failed = status in (Status.UNDELIVERED, Status.FAILED)
    return StatusUpdate(status, provider_error(code) if failed else None, str(code))


def ttl_minutes(ttl_seconds: int) -> int | None:
    """SMS.ru takes 1 to 1440 minutes; a longer life is left to its default rather than cut short."""
    minutes = math.ceil(ttl_seconds / 60)
    if minutes > MAX_TTL_MINUTES:
        return None
    return max(minutes, 1)


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SmsRuClient(ProviderClient):
    kind = "smsru"
    default_base_url = "https://sms.ru"
    settings_keys: ClassVar[frozenset[str]] = frozenset({"base_url", "api_id"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"api_id"})
    status_batch_size = 100
    can_lookup = False
    pushes_reports = True

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        problems = super().validate_settings(settings)
        api_id = settings.get("api_id")
        if not isinstance(api_id, str) or not api_id.strip():
            problems.append(("settings.api_id", FieldCode.REQUIRED, "api_id is required"))
        base_url = settings.get("base_url")
        if base_url is not None and not _is_http_url(base_url):
            problems.append(("settings.base_url", FieldCode.INVALID_URL, "base_url must be an http(s) URL"))
        return problems

    # -- sending --

    def send(self, sms: OutgoingSMS) -> SendResult:
        number = sms.to.lstrip("+")
        form = {"to": number, "msg": sms.text}
        if sms.sender:
            form["from"] = sms.sender
        if sms.ttl_seconds is not None:
            minutes = ttl_minutes(sms.ttl_seconds)
            if minutes is not None:
                form["ttl"] = str(minutes)
        answer = self._call("/sms/send", form, may_have_sent=True)
        entry = _entry_for(answer.get("sms"), number)
        if entry is None:
            # The request was accepted but says nothing of our number: it may well be on its way.
            raise TransientProviderError("SMS.ru answer has no entry for the number", may_have_sent=True)
        if entry.get("status") != "OK":
            code = _code(entry.get("status_code"))
            raise error_for_code(code if code is not None else 0)
        sms_id = entry.get("sms_id")
        if not sms_id:
            raise TransientProviderError("SMS.ru answer has no sms_id", may_have_sent=True)
        return SendResult(provider_message_id=str(sms_id))

    # -- statuses --

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        if not queries:
            return {}
        if len(queries) > self.status_batch_size:
            raise ValueError(f"at most {self.status_batch_size} ids per SMS.ru status call")
        ids = [q.provider_message_id for q in queries]
        try:
            answer = self._call("/sms/status", {"sms_id": ",".join(ids)})
        except PermanentProviderError as exc:
            if exc.code == str(NOT_FOUND):
                return {}  # a whole-request "not found": none of them is known
            raise
        entries = answer.get("sms")
        if not isinstance(entries, Mapping):
            return {}
        result: dict[str, StatusUpdate] = {}
        for sms_id, entry in entries.items():
            code = _code(entry.get("status_code")) if isinstance(entry, Mapping) else None
            if code is None or code == NOT_FOUND or sms_id not in ids:
                continue
            result[sms_id] = status_update(code)
        return result

    # -- delivery reports --

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        entries = _report_entries(request)
        self._check_report_hash(entries, request.first("hash"))
        reports = [report for report in map(_report_from_entry, entries) if report is not None]
        return ParsedReports(reports=reports, answer=REPORT_ANSWER)

    def _check_report_hash(self, entries: list[str], given: str | None) -> None:
        """The token in our report URL is the gate; the hash, when sent, proves the body came from SMS.ru."""
        api_id = str(self.settings.get("api_id") or "")
        if given is None or not api_id:
            return
        expected = hashlib.sha256((api_id + "".join(entries)).encode("utf-8")).hexdigest()
        if not hmac.compare_digest(expected, given.strip().lower()):
            raise PermanentProviderError("SMS.ru report hash does not match", code="bad_hash")

    # -- balance --

    def balance(self) -> Balance:
        answer = self._call("/my/balance", {})
        try:
            amount = Decimal(str(answer["balance"]))
        except (KeyError, ArithmeticError) as exc:
            raise PermanentProviderError("SMS.ru balance answer has no balance", code="bad_answer") from exc
        return Balance(amount=amount, currency="RUB")

    # -- helpers --

    def _call(self, path: str, form: dict[str, str], *, may_have_sent: bool = False) -> dict[str, Any]:
        """POST one SMS.ru method; its request-level errors raised as ours."""
        body = {"api_id": str(self.settings.get("api_id") or ""), "json": "1", **form}
        response = self.http("POST", f"{self.base_url()}{path}", data=body)
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise _unreadable(response.status_code, may_have_sent) from exc
        if not isinstance(answer, dict):
            raise _unreadable(response.status_code, may_have_sent)
        if answer.get("status") != "OK":
            code = _code(answer.get("status_code"))
            raise error_for_code(code if code is not None else 0)
        return answer


def _unreadable(http_status: int, may_have_sent: bool) -> ProviderError:
    # An answer we cannot read after a send went out leaves the outcome unknown.
    return TransientProviderError(
        f"unreadable SMS.ru answer (HTTP {http_status})", code="bad_answer", may_have_sent=may_have_sent
    )


def _entry_for(entries: Any, number: str) -> Mapping[str, Any] | None:
    """Our number's entry; with one number sent, the only entry is ours whatever its key."""
    if not isinstance(entries, Mapping) or not entries:
        return None
    entry = entries.get(number)
    if entry is None and len(entries) == 1:
        entry = next(iter(entries.values()))
    return entry if isinstance(entry, Mapping) else None


def _report_entries(request: IncomingRequest) -> list[str]:
    """The `data[N]` values in index order (the order the hash is computed over)."""
    indexed: list[tuple[int, int, str]] = []
    for position, (key, values) in enumerate(request.form.items()):
        match = _DATA_KEY.match(key)
        if not match and key != "data":
            continue
        index = int(match.group(1)) if match and match.group(1) else position
        indexed.extend((index, n, value) for n, value in enumerate(values))
    return [value for _, _, value in sorted(indexed)]


def _report_from_entry(entry: str) -> Report | None:
    lines = [line.strip() for line in entry.splitlines()]
    if len(lines) < 3 or lines[0] != "sms_status" or not lines[1]:
        return None  # callcheck_status and other kinds are not ours
    code = _code(lines[2])
    if code is None:
        return None
    return Report(provider_message_id=lines[1], update=status_update(code))


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None
