"""SMSC.ru client (kind "smsc"): `/sys/send.php`, `/sys/status.php`, `/sys/balance.php`, and its reports.

Wire facts this client rests on (SMSC.ru HTTP API, https://smsc.ru/api/http/, and its official SDKs):

- Every call is a form POST with `fmt=3` (JSON answers) and `charset=utf-8` (SMSC's default is
  windows-1251). Authentication is `login` + `psw`, or `apikey` alone. Secrets go only in the POST body,
  never in the URL, so no exception, log line or proxy access log can carry them.
- Send: `phones`, `mes`, `sender`, `id` (ours: an integer 1..2147483647; SMSC answers with the same
  `id`), `valid` (lifetime as `hh:mm`, 00:01 to 24:00) and `cost=3` (the answer adds the cost and the
  new balance). OK: `{"id": 123, "cnt": 1, "cost": "1.35", "balance": "98.65"}`; refused:
  `{"error": "...", "error_code": N}` (with `"id"` when one was given).
- A message is identified by the pair (`id`, phone), and the id is ours, so `status.php?id=<ref>&phone=<to>`
  finds a message we may have sent after a timeout (`can_lookup`). Status `-3` means "not found".
- Batched status: comma lists of ids and phones in the same order; the answer is a JSON list of
  `{"status", "last_date", "last_timestamp", "err", "id", "phone"}`. A single query keeps the list
  form only with a trailing comma, so one query is sent as `id=123,` / `phone=+7916...,`.
- Delivery reports: SMSC POSTs form fields `id`, `phone`, `status`, `err` to the handler URL set in the
  account settings; send.php has no per-message callback parameter, so `report_url` is not sent. Our
  dlr URL (with its token) has to be entered in the SMSC account by hand. Other fields SMSC may add
  (times, a checksum) are ignored: the token in our URL is what authenticates a report.
- Balance: `balance.php` with `cur=1` answers `{"balance": "100.01", "currency": "RUB"}`.

Send errors (`error_code`) and what they become:

| code | SMSC meaning                                  | raised as                                      |
|------|-----------------------------------------------|------------------------------------------------|
| 1    | bad parameters                                | PermanentProviderError                         |
| 2    | bad login or password (or IP not allowed)     | PermanentProviderError, provider_wide          |
| 3    | not enough money                              | PermanentProviderError, provider_wide          |
| 4    | IP blocked for a while after frequent errors  | TransientProviderError, provider_wide          |
| 5    | bad date format                               | PermanentProviderError                         |
| 6    | message forbidden (text or sender name)       | PermanentProviderError                         |
| 7    | bad phone number format                       | InvalidNumber (reason invalid_number)          |
| 8    | cannot be delivered to this number            | PermanentProviderError (another route may)     |
| 9    | same request repeated within a minute, or too | TransientProviderError, may_have_sent,         |
|      | many concurrent requests                      | retry_after 60 s: an identical earlier request |
|      |                                               | may have been taken, so look it up first       |
| else | undocumented                                  | PermanentProviderError                         |

The same codes from `status.php` and `balance.php` raise the same types, never with may_have_sent.

Statuses (`status` field) and what they become (reason `provider_error:<status>` on failures, but
`invalid_number` for 22; the status is kept in `provider_status` either way):

| status | SMSC meaning                        | our status              |
|--------|-------------------------------------|-------------------------|
| -3     | message not found                   | left out / lookup None  |
| -2     | stopped                             | None (still in progress)|
| -1     | waiting to be sent                  | None                    |
| 0      | handed to the operator              | None                    |
| 1      | delivered                           | delivered               |
| 2      | read                                | delivered               |
| 3      | expired                             | undelivered             |
| 4      | link clicked                        | delivered               |
| 20     | cannot be delivered                 | undelivered             |
| 22     | bad number                          | failed, invalid_number  |
| 23     | forbidden                           | failed                  |
| 24     | not enough money                    | failed                  |
| 25     | unreachable number                  | undelivered             |
| else   | undocumented                        | None (kept for the log) |

`-2` stays in progress rather than failed: a stopped message can be resumed in SMSC's account, and a
wrong "failed" could lead a caller to send a second SMS (the status poller's timeout ends it if it
never moves). The delivery error code `err` does not change the mapping; it is kept in
`StatusUpdate.provider_status` as `"<status>;err=<err>"`. Documented values: 0 none, 1 no such
subscriber, 6 subscriber offline, 11 cannot take SMS, 12 handset error, 13 subscriber blocked, 21 no
SMS support, 200 virtual (test) sending, 220 operator queue full, 240 busy, 241 sound conversion
error, 242 answering machine, 243 no contract, 244 mailings forbidden, 245 no status received, 246
time restriction, 247 message limit exceeded, 248 no route, 249 bad number format, 250 number
forbidden by settings, 251 per-number limit exceeded, 252 number forbidden, 253 spam filter, 254
unregistered sender id, 255 rejected by the operator.

SMSC takes at most 1000 characters in `mes`; a longer text is refused here, before any call, so the
next provider can take it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlparse

import requests

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
    TextTooLong,
    TransientProviderError,
)
from smsqueue.statuses import Reason, Status, provider_error

log = logging.getLogger(__name__)

MAX_ID = 2_147_483_647  # SMSC's `id` is a positive 32-bit integer
MAX_TEXT = 1000  # characters in `mes`
MAX_VALID_MINUTES = 24 * 60
BLOCKED_RETRY_AFTER = 60.0  # codes 4 and 9 are about "the last minute"

NOT_FOUND = -3
IN_PROGRESS_STATUSES = frozenset({-2, -1, 0})
DELIVERED_STATUSES = frozenset({1, 2, 4})
UNDELIVERED_STATUSES = frozenset({3, 20, 25})
FAILED_STATUSES = frozenset({22, 23, 24})

PROVIDER_WIDE_ERRORS = frozenset({2, 3, 4})  # the account or our address: the provider is paused
NUMBER_ERRORS = frozenset({7})  # all "bad number": InvalidNumber
BAD_NUMBER_STATUS = 22
TRANSIENT_ERRORS = frozenset({4, 9})

ERROR_TEXTS: dict[int, str] = {
    1: "bad parameters",
    2: "bad login or password",
    3: "not enough money",
    4: "IP address blocked for a while",
    5: "bad date format",
    6: "message forbidden",
    7: "bad phone number",
    8: "message cannot be delivered to this number",
    9: "too many identical or concurrent requests",
}


class SmscClient(ProviderClient):
    kind = "smsc"
    default_base_url = "https://smsc.ru"
    settings_keys = frozenset({"base_url", "login", "password", "apikey"})
    secret_keys = frozenset({"password", "apikey"})
    status_batch_size = 100  # ids and phones travel in a POST body, so the list length is not URL-bound
    can_lookup = True
    pushes_reports = True  # to the handler URL configured in the SMSC account, not per message

    SEND_PATH: ClassVar[str] = "/sys/send.php"
    STATUS_PATH: ClassVar[str] = "/sys/status.php"
    BALANCE_PATH: ClassVar[str] = "/sys/balance.php"

    # -- settings ---------------------------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        problems = super().validate_settings(settings)
        for key in cls.settings_keys & settings.keys():
            if settings[key] is not None and not isinstance(settings[key], str):
                problems.append((f"settings.{key}", FieldCode.INVALID_TYPE, f"{key} must be a string"))
        base_url = settings.get("base_url")
        if isinstance(base_url, str) and base_url and not _is_http_url(base_url):
            problems.append(("settings.base_url", FieldCode.INVALID_URL, "base_url must be an http(s) URL"))
        if not _filled(settings.get("apikey")):
            problems.extend(_login_password_problems(settings))
        return problems

    # -- the provider calls -----------------------------------------------------------------------------

    def send(self, sms: OutgoingSMS) -> SendResult:
        if not 1 <= sms.ref <= MAX_ID:
            # Sending without our id would make a timed-out send impossible to look up, and wrapping it
            # would match an older message: let another provider take it.
            raise PermanentProviderError("message ref outside SMSC's id range", code="ref_out_of_range")
        if len(sms.text) > MAX_TEXT:
            raise TextTooLong(MAX_TEXT)
        fields = {"phones": sms.to, "mes": sms.text, "id": str(sms.ref), "cost": "3"}
        if sms.sender:
            fields["sender"] = sms.sender
        if sms.ttl_seconds is not None:
            fields["valid"] = valid_param(sms.ttl_seconds)
        answer = self._call(self.SEND_PATH, fields, sending=True)
        if not isinstance(answer, dict) or "id" not in answer:
            raise TransientProviderError("SMSC answer has no id", code="bad_answer", may_have_sent=True)
        provider_id = str(answer["id"])
        if provider_id != str(sms.ref):
            log.warning("SMSC answered id %s for our ref %s", provider_id, sms.ref)
        return SendResult(provider_message_id=provider_id, cost=_decimal_or_none(answer.get("cost")))

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        if not queries:
            return {}
        if len(queries) > self.status_batch_size:
            raise ValueError(f"at most {self.status_batch_size} queries per call")
        fields = {
            "id": list_param(q.provider_message_id for q in queries),
            "phone": list_param(q.to for q in queries),
        }
        answer = self._call(self.STATUS_PATH, fields)
        items = answer if isinstance(answer, list) else [answer]
        return match_status_items(queries, items)

    def lookup(self, sms: OutgoingSMS) -> SendResult | None:
        fields = {"id": list_param([str(sms.ref)]), "phone": list_param([sms.to])}
        answer = self._call(self.STATUS_PATH, fields)
        items = answer if isinstance(answer, list) else [answer]
        found = [item for item in items if isinstance(item, dict) and _int(item.get("status")) != NOT_FOUND]
        if not found:
            return None
        return SendResult(provider_message_id=str(sms.ref), update=status_update(found[0]))

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        provider_id = request.first("id")
        status = _int(request.first("status"))
        # SMSC also posts incoming messages and other events to the same handler: no status, no report.
        if not provider_id or status is None or status == NOT_FOUND:
            return ParsedReports(reports=[], answer=ReportAnswer("OK"))
        update = status_update({"status": status, "err": request.first("err")})
        ref = int(provider_id) if provider_id.isdigit() else None
        report = Report(provider_message_id=provider_id, update=update, ref=ref)
        return ParsedReports(reports=[report], answer=ReportAnswer("OK"))

    def balance(self) -> Balance:
        answer = self._call(self.BALANCE_PATH, {"cur": "1"})
        amount = _decimal_or_none(answer.get("balance")) if isinstance(answer, dict) else None
        if amount is None:
            raise TransientProviderError("SMSC answer has no balance", code="bad_answer")
        return Balance(amount=amount, currency=currency_code(answer.get("currency")))

    # -- helpers ----------------------------------------------------------------------------------------

    def _auth_fields(self) -> dict[str, str]:
        apikey = self.settings.get("apikey")
        if _filled(apikey):
            return {"apikey": str(apikey)}
        return {
            "login": str(self.settings.get("login") or ""),
            "psw": str(self.settings.get("password") or ""),
        }

    def _call(self, path: str, fields: Mapping[str, str], *, sending: bool = False) -> Any:
        """POST one SMSC command and return its JSON answer; SMSC's own errors become our error types."""
        data = {**self._auth_fields(), **fields, "fmt": "3", "charset": "utf-8"}
        # A redirect would turn the POST into a GET and drop the fields: report it, do not follow it.
        response = self.http("POST", self.base_url() + path, data=data, allow_redirects=False)
        check_http_status(response, sending=sending)
        answer = decode_answer(response, sending=sending)
        if isinstance(answer, dict) and "error_code" in answer:
            raise error_for(answer, sending=sending)
        return answer


# --- mapping: plain functions, so tests can check every table entry without HTTP -------------------------


def status_update(item: Mapping[str, Any]) -> StatusUpdate:
    """Our view of one SMSC status item (`status` plus the optional delivery error `err`)."""
    code = _int(item.get("status"))
    err = _int(item.get("err"))
    raw = "" if code is None else str(code)
    if err:
        raw = f"{raw};err={err}"
    if code in DELIVERED_STATUSES:
        return StatusUpdate(Status.DELIVERED, None, raw)
    if code in UNDELIVERED_STATUSES:
        return StatusUpdate(Status.UNDELIVERED, provider_error(code), raw)
    if code == BAD_NUMBER_STATUS:
        return StatusUpdate(Status.FAILED, Reason.INVALID_NUMBER, raw)
    if code in FAILED_STATUSES:
        return StatusUpdate(Status.FAILED, provider_error(code), raw)
    if code not in IN_PROGRESS_STATUSES:
        log.warning("undocumented SMSC status %r kept in progress", item.get("status"))
    return StatusUpdate(None, None, raw or None)


def match_status_items(queries: Sequence[StatusQuery], items: Iterable[Any]) -> dict[str, StatusUpdate]:
    """Updates by provider_message_id; items SMSC does not know (-3) or we did not ask for are left out.

    Items are matched by id and phone digits (SMSC drops the "+"); an item without them is taken to
    answer the query at its position, as SMSC keeps the order of the request.
    """
    wanted = {(q.provider_message_id, _digits(q.to)): q for q in queries}
    updates: dict[str, StatusUpdate] = {}
    for position, item in enumerate(items):
        if not isinstance(item, dict) or _int(item.get("status")) == NOT_FOUND:
            continue
        if "id" in item and "phone" in item:
            query = wanted.get((str(item["id"]), _digits(str(item["phone"]))))
        else:
            query = queries[position] if position < len(queries) else None
        if query is not None:
            updates[query.provider_message_id] = status_update(item)
    return updates


def error_for(answer: Mapping[str, Any], *, sending: bool) -> ProviderError:
    code = _int(answer.get("error_code"))
    text = ERROR_TEXTS.get(code or 0, "undocumented error")
    message = f"SMSC error {answer.get('error_code')}: {text}"
    if code in TRANSIENT_ERRORS:
        # 9 on a send can mean an identical request was taken a moment ago: ask before sending again.
        return TransientProviderError(
            message,
            code=code,
            may_have_sent=sending and code == 9,
            retry_after=BLOCKED_RETRY_AFTER,
            provider_wide=code in PROVIDER_WIDE_ERRORS,  # 4: every request from us is refused a while
        )
    if code in NUMBER_ERRORS:
        return InvalidNumber(message, code=answer.get("error_code"))
    return PermanentProviderError(
        message, code=answer.get("error_code"), provider_wide=code in PROVIDER_WIDE_ERRORS
    )


def check_http_status(response: requests.Response, *, sending: bool) -> None:
    """SMSC answers 200 to everything it parsed; base.http already turned 5xx and 429 into errors."""
    if response.status_code == 200:
        return
    if 300 <= response.status_code < 500:
        # A wrong base_url, a redirect or a proxy refusing us: nothing gets through until it is fixed.
        raise PermanentProviderError(
            f"HTTP {response.status_code}", code=f"http_{response.status_code}", provider_wide=True
        )
    raise TransientProviderError(
        f"HTTP {response.status_code}", code=f"http_{response.status_code}", may_have_sent=sending
    )


def decode_answer(response: requests.Response, *, sending: bool) -> Any:
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        # Something answered 200 with a body we cannot read: the send may have gone through.
        raise TransientProviderError(
            "unreadable SMSC answer", code="bad_answer", may_have_sent=sending
        ) from None


def valid_param(ttl_seconds: int) -> str:
    """SMSC's `valid` as hh:mm, rounded down (never past our valid_until), kept within 00:01..24:00."""
    minutes = min(max(int(ttl_seconds) // 60, 1), MAX_VALID_MINUTES)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def list_param(values: Iterable[str]) -> str:
    """A comma list; a single value gets a trailing comma so SMSC keeps the list form of its answer."""
    values = list(values)
    joined = ",".join(values)
    return joined + "," if len(values) == 1 else joined


def currency_code(value: Any) -> str:
    """An ISO 4217 code from SMSC's `currency`; anything else (older accounts say "руб") is RUB."""  # noqa: RUF002
    text = value.strip() if isinstance(value, str) else ""
    code = text.upper() if len(text) == 3 and text.isascii() and text.isalpha() else "RUB"
    return "RUB" if code == "RUR" else code  # RUR is the pre-1998 code some systems still print


def _login_password_problems(settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    message = "either login and password, or apikey, is required"
    return [
        (f"settings.{key}", FieldCode.REQUIRED, message)
        for key in ("login", "password")
        if not _filled(settings.get(key))
    ]


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
