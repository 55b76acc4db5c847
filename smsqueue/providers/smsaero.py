"""SMS Aero API v2 client (kind "smsaero").

Wire facts (https://smsaero.ru/integration/documentation/api/ and the official SDKs smsaero/smsaero_python,
smsaero/smsaero_golang, smsaero/smsaero_php on GitHub):

- Base `https://gate.smsaero.ru/v2` (the SDKs fall back to gate.smsaero.org / .net; we do not, because a
  second host after an ambiguous failure could send twice). HTTP Basic auth `email:api_key`. Every method is
  a POST with a JSON body (UTF-8, sent unescaped).
- `sms/send`: `number` (digits, no "+"), `text`, `sign` (the sender; required, "SMS Aero" is the shared sign
  the SDKs default to), `callbackUrl` (optional; SMS Aero calls it on status changes and wants HTTP 200).
  Answer `{"success": true, "data": {"id": 12345, "status": 0, "extendStatus": "queue", "cost": 5.49, ...},
  "message": null}`.
- `sms/status`: `{"id": <int>}`, one message per call; `data` as above.
- `balance`: `{"success": true, "data": {"balance": 337.03}}`, in roubles.
- Errors: `{"success": false, "data": null | {"<field>": ["..."]}, "message": "..."}` with an HTTP status (401
  for bad credentials, 400 for validation); older answers `{"result": "no credits"}` and
  `{"result": "reject", "reason": "..."}`. There are no numeric error codes, so the codes in our reasons
  (`provider_error:<code>`) are ours, from the HTTP status, the field at fault and the message (table below);
  a bad number's reason is `invalid_number`, with SMS Aero's own message kept in the error's text.
- No id of ours can be given to SMS Aero, so `lookup` is not supported.
- The callback body is not specified in the docs we could check: `parse_report` accepts a JSON object (the
  message as in `data`, bare or wrapped in `data`, or a list of them) or form/query fields `id`, `status`
  (and `extendStatus`), and answers 200 `OK`.

Errors, checked in this order (`_error_code`):

| when | our code | raised as |
|---|---|---|
| HTTP 401 or 403 | unauthorized | permanent, provider_wide |
| `result: "no credits"` | no_money | permanent, provider_wide |
| a `sign` field error in `data` | sign | permanent (a sender name's refusal) |
| a `number`/`numbers` field error in `data` | invalid_number | InvalidNumber (reason invalid_number) |
| a message about credentials/authorization | unauthorized | permanent, provider_wide |
| a message about a limit or too many requests | limit | transient |
| a message about money/credits/balance | no_money | permanent, provider_wide |
| a message about the sign | sign | permanent |
| a message about the number/phone | invalid_number | InvalidNumber (reason invalid_number) |
| HTTP 404 or a "not found" message | not_found | permanent (a status query: left out) |
| `result: "reject"` | reject | permanent |
| anything else | validation (HTTP 400), http_<status>, or error (HTTP 200) | permanent |

Message statuses (STATUSES), reason `provider_error:<status>` on failures:

| status | meaning | our status |
|---|---|---|
| 0, 3, 4, 8 | queue, transferred to the operator, waiting for the status, moderation | None (in progress) |
| 1 | delivered | delivered |
| 2 | not delivered | undelivered |
| 6 | declined | failed |
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

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
    TransientProviderError,
)
from smsqueue.statuses import Status, provider_error

STATUSES: dict[int, Status | None] = {
    0: None,
    1: Status.DELIVERED,
    2: Status.UNDELIVERED,
    3: None,
    4: None,
    6: Status.FAILED,
    8: None,
}

DEFAULT_SIGN = "SMS Aero"
REPORT_ANSWER = ReportAnswer(body="OK", status=200, content_type="text/plain; charset=utf-8")
MAX_MESSAGE_CHARS = 200  # of the provider's own error message kept in ours

# (our code, pattern in the provider's message) in the order they are tried
# (limits and money first: their messages may mention numbers, e.g. "Exceeded limit of numbers")
_MESSAGE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unauthorized", re.compile(r"credential|authori[sz]|api[_ ]?key|логин|авториз", re.I)),
    ("limit", re.compile(r"limit|too many|лимит", re.I)),
    ("no_money", re.compile(r"money|credit|balance|funds|средств|баланс", re.I)),
    ("sign", re.compile(r"\bsign|signature|подпис", re.I)),
    ("invalid_number", re.compile(r"\bnumber|phone|номер", re.I)),
)
_NOT_FOUND = re.compile(r"not found|не найден", re.I)


def status_update(code: int) -> StatusUpdate:
    status = STATUSES.get(code)
    failed = status in (Status.UNDELIVERED, Status.FAILED)
    return StatusUpdate(status, provider_error(code) if failed else None, str(code))


def error_for_answer(
    http_status: int, content: Mapping[str, Any], secrets: Iterable[str] = ()
) -> ProviderError:
    """Our error for an SMS Aero failure answer."""
    message = _scrub(str(content.get("message") or content.get("reason") or ""), secrets)
    code = _error_code(http_status, content, message)
    text = f"SMS Aero error {code} (HTTP {http_status})" + (f": {message}" if message else "")
    if code == "limit":
        return TransientProviderError(text, code=code)
    if code == "invalid_number":
        return InvalidNumber(text, code=code)  # `text` keeps SMS Aero's own message
    return PermanentProviderError(text, code=code, provider_wide=code in ("unauthorized", "no_money"))


def _error_code(http_status: int, content: Mapping[str, Any], message: str) -> str:
    if http_status in (401, 403):
        return "unauthorized"
    if content.get("result") == "no credits":
        return "no_money"
    fields = content.get("data")
    if isinstance(fields, Mapping):
        if "sign" in fields:
            return "sign"
        if "number" in fields or "numbers" in fields:
            return "invalid_number"
    for code, pattern in _MESSAGE_PATTERNS:
        if pattern.search(message):
            return code
    if http_status == 404 or _NOT_FOUND.search(message):
        return "not_found"
    if content.get("result") == "reject":
        return "reject"
    if http_status == 400:
        return "validation"
    return f"http_{http_status}" if http_status != 200 else "error"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    text = text[:MAX_MESSAGE_CHARS]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SmsAeroClient(ProviderClient):
    kind = "smsaero"
    default_base_url = "https://gate.smsaero.ru/v2"
    settings_keys: ClassVar[frozenset[str]] = frozenset({"base_url", "email", "api_key"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"api_key"})
    status_batch_size = 1  # sms/status takes one id
    can_lookup = False
    pushes_reports = True

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        problems = super().validate_settings(settings)
        email = settings.get("email")
        if not isinstance(email, str) or "@" not in email:
            problems.append(("settings.email", FieldCode.REQUIRED, "email (the account login) is required"))
        api_key = settings.get("api_key")
        if not isinstance(api_key, str) or not api_key.strip():
            problems.append(("settings.api_key", FieldCode.REQUIRED, "api_key is required"))
        base_url = settings.get("base_url")
        if base_url is not None and not (isinstance(base_url, str) and re.match(r"^https?://\S+$", base_url)):
            problems.append(("settings.base_url", FieldCode.INVALID_URL, "base_url must be an http(s) URL"))
        return problems

    # -- sending --

    def send(self, sms: OutgoingSMS) -> SendResult:
        payload: dict[str, Any] = {
            "number": sms.to.lstrip("+"),
            "text": sms.text,
            "sign": sms.sender or DEFAULT_SIGN,
        }
        if sms.report_url:
            payload["callbackUrl"] = sms.report_url
        data = self._call("sms/send", payload, may_have_sent=True)
        message_id = data.get("id") if isinstance(data, Mapping) else None
        if message_id is None or isinstance(message_id, bool):
            raise TransientProviderError("SMS Aero answer has no message id", may_have_sent=True)
        code = _code(data.get("status"))
        update = status_update(code) if code is not None and STATUSES.get(code) is not None else None
        return SendResult(provider_message_id=str(message_id), update=update, cost=_decimal(data.get("cost")))

    # -- statuses --

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        if len(queries) > self.status_batch_size:
            raise ValueError("SMS Aero answers one status per call")
        result: dict[str, StatusUpdate] = {}
        for query in queries:
            update = self._status(query.provider_message_id)
            if update is not None:
                result[query.provider_message_id] = update
        return result

    def _status(self, message_id: str) -> StatusUpdate | None:
        payload = {"id": int(message_id)} if message_id.isdigit() else {"id": message_id}
        try:
            data = self._call("sms/status", payload)
        except PermanentProviderError as exc:
            if exc.code == "not_found":
                return None  # SMS Aero does not know it: left out
            raise
        code = _code(data.get("status")) if isinstance(data, Mapping) else None
        return status_update(code) if code is not None else None

    # -- delivery reports --

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        reports = [report for report in map(_report_from, _report_items(request)) if report is not None]
        return ParsedReports(reports=reports, answer=REPORT_ANSWER)

    # -- balance --

    def balance(self) -> Balance:
        data = self._call("balance", {})
        amount = _decimal(data.get("balance")) if isinstance(data, Mapping) else None
        if amount is None:
            raise PermanentProviderError("SMS Aero balance answer has no balance", code="bad_answer")
        return Balance(amount=amount, currency="RUB")

    # -- helpers --

    def _call(self, method: str, payload: Mapping[str, Any], *, may_have_sent: bool = False) -> Any:
        """POST one method; the answer's `data`, or its failure raised as ours."""
        response = self.http(
            "POST",
            f"{self.base_url()}/{method}",
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
            auth=requests.auth.HTTPBasicAuth(
                str(self.settings.get("email") or ""), str(self.settings.get("api_key") or "")
            ),
        )
        content = _json_object(response)
        if content is None:
            if response.ok:
                # A 2xx we cannot read after a send went out: the message may be on its way.
                raise TransientProviderError(
                    f"unreadable SMS Aero answer (HTTP {response.status_code})",
                    code="bad_answer",
                    may_have_sent=may_have_sent,
                )
            content = {}
        if response.ok and content.get("success") is True:
            return content.get("data")
        raise error_for_answer(response.status_code, content, self._secrets())

    def _secrets(self) -> list[str]:
        return [str(self.settings.get(key) or "") for key in self.secret_keys]


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        content = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _report_items(request: IncomingRequest) -> list[Mapping[str, Any]]:
    """The status objects of a callback, in whichever shape it came."""
    body = request.json
    if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping | list):
        body = body["data"]
    if isinstance(body, Mapping):
        return [body]
    if isinstance(body, list):
        return [item for item in body if isinstance(item, Mapping)]
    fields = {name: request.first(name) for name in ("id", "status", "extendStatus")}
    return [fields] if fields["id"] is not None else []


def _report_from(item: Mapping[str, Any]) -> Report | None:
    message_id = item.get("id")
    code = _code(item.get("status"))
    if message_id is None or isinstance(message_id, bool) or code is None:
        return None
    return Report(provider_message_id=str(message_id), update=status_update(code))
