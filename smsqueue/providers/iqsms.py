"""IQSMS client (kind "iqsms"): JSON API v2 `send.json`, `status.json`, `statusQueue.json`, `balance.json`.

Wire facts (IQSMS JSON API v2, as summarised in DESIGN.md "Providers"):

- `POST {base_url}/messages/v2/<method>.json` (default `https://api.iqsms.ru`), a UTF-8 JSON body (sent
  unescaped) with `login` and `password` in it, never in the URL.
- Send: up to 200 `messages`, each `{"clientId", "phone", "text", "sender"}`; `clientId` is our ref
  (required, and what every later status names), `phone` digits without "+", `sender` only when the
  message has one. The top-level `statusQueueName` (3-16 Latin letters and digits: the `status_queue`
  setting, by default derived from the provider code, `status_queue_name`) makes every later status of
  those messages wait in that queue. Answer: `{"status": "ok", "messages": [{"clientId": "42",
  "smscId": 1001, "status": "accepted"}]}`; a refused request is `{"status": "error", "description":
  "..."}`, a refused message has its error text as its `status`.
- Status: `status.json {"messages": [{"clientId", "smscId"}]}` -> `messages` with each one's `status`.
  A message we may have sent is found by `clientId` alone (`lookup`), so a timed-out send is settled
  and never resent; `incorrect id` means IQSMS does not have it.
- Status queue: `statusQueue.json {"statusQueueName", "statusQueueLimit"}` pops up to the limit;
  `messages` as above (`status: error`, `queue is empty`, when drained). `drain_status_queue` pops it in
  batches and hands each batch, as Reports carrying our ref, to a handler.
- Balance: `balance.json` -> `{"status": "ok", "balance": [{"type": "RUB", "balance": "100.50",
  "credit": 0}]}`.
- IQSMS does not push reports to a URL of ours: the queue takes their place (`pushes_reports` False).
- `ttl_seconds` is not sent: the API descriptions we rely on have no validity period.

Errors (a request's `description` or a message's `status`), reason `provider_error:<text, snake_case>`:

| text | raised as |
|---|---|
| `error authorization`, `not enough balance`, `invalid status queue name` | permanent, provider_wide |
| `invalid mobile phone` | permanent, number_problem |
| `text is empty`, `sender address invalid`, `wapurl invalid`, `invalid schedule time format` | permanent |
| any other text | permanent |
| HTTP 401/403 | permanent, provider_wide |
| HTTP 5xx or 429, no connection | transient (base.http) |

Statuses (STATUSES), reason `provider_error:<status, snake_case>` on failures:

| status | our status |
|---|---|
| `accepted`, `queued`, `smsc submit` | None (in progress) |
| `delivered` | delivered |
| `delivery error` | undelivered |
| `smsc reject` | failed (the number was refused) |
| `incorrect id` | left out / lookup None |
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from smsqueue.errors import FieldCode
from smsqueue.providers.base import (
    Balance,
    OutgoingSMS,
    PermanentProviderError,
    ProviderClient,
    ProviderError,
    Report,
    SendResult,
    SettingProblem,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
    required_problems,
    url_problems,
)
from smsqueue.statuses import Status, provider_error

log = logging.getLogger(__name__)

MAX_BATCH = 200  # messages per send or status request
QUEUE_LIMIT = 200  # statuses popped per statusQueue.json call
INCORRECT_ID = "incorrect id"
QUEUE_EMPTY = "queue is empty"
STATUSES: dict[str, Status | None] = {
    "accepted": None,
    "queued": None,
    "smsc submit": None,
    "delivered": Status.DELIVERED,
    "delivery error": Status.UNDELIVERED,
    "smsc reject": Status.FAILED,
}
PROVIDER_WIDE = frozenset({"error authorization", "not enough balance", "invalid status queue name"})
NUMBER_ERRORS = frozenset({"invalid mobile phone"})
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9]{3,16}$")


def status_queue_name(provider_code: str) -> str:
    """The default queue of a provider: its code if that is a valid name, else its letters and digits
    (up to 10) and 6 hex digits of its hash, so two codes never share a queue."""
    if _QUEUE_NAME.match(provider_code):
        return provider_code
    cleaned = "".join(ch for ch in provider_code if ch.isascii() and ch.isalnum())[:10]
    return cleaned + hashlib.sha256(provider_code.encode("utf-8")).hexdigest()[:6]


def code_of(text: str) -> str:
    """An IQSMS text as the code in our reasons: lower snake_case, at most 40 characters."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")[:40] or "error"


def error_for(text: str) -> ProviderError:
    key = " ".join(text.split()).lower()
    return PermanentProviderError(
        f"IQSMS error: {code_of(key)}",
        code=code_of(key),
        number_problem=key in NUMBER_ERRORS,
        provider_wide=key in PROVIDER_WIDE,
    )


def status_update(text: str) -> StatusUpdate:
    key = " ".join(text.split()).lower()
    if key not in STATUSES:
        log.warning("undocumented IQSMS status %r kept in progress", text[:40])
    status = STATUSES.get(key)
    failed = status in (Status.UNDELIVERED, Status.FAILED)
    return StatusUpdate(status, provider_error(code_of(key)) if failed else None, key[:64] or None)


class IqsmsClient(ProviderClient):
    kind = "iqsms"
    default_base_url = "https://api.iqsms.ru"
    settings_keys = frozenset({"base_url", "login", "password", "status_queue"})
    secret_keys = frozenset({"password"})
    status_batch_size = MAX_BATCH
    can_lookup = True  # by clientId, which is our ref
    pushes_reports = False  # statuses wait in the status queue instead
    has_status_queue = True
    send_batch_size: ClassVar[int] = MAX_BATCH

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[SettingProblem]:
        problems = [
            *super().validate_settings(settings),
            *url_problems(settings, "base_url"),
            *required_problems(settings, "login", "password"),
        ]
        queue = settings.get("status_queue")
        if queue is not None and not (isinstance(queue, str) and _QUEUE_NAME.match(queue)):
            problems.append(
                (
                    "settings.status_queue",
                    FieldCode.INVALID_VALUE,
                    "status_queue is 3-16 Latin letters and digits",
                )
            )
        return problems

    @property
    def status_queue(self) -> str:
        return str(self.settings.get("status_queue") or status_queue_name(self.config.code))

    # -- sending --

    def send(self, sms: OutgoingSMS) -> SendResult:
        result = self.send_many([sms])[0]
        if isinstance(result, ProviderError):
            raise result
        return result

    def send_many(self, batch: Sequence[OutgoingSMS]) -> list[SendResult | ProviderError]:
        """Send up to 200 messages in one request; each one's result or error, in order."""
        if len(batch) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per IQSMS request")
        if not batch:
            return []
        messages = []
        for sms in batch:
            item = {"clientId": str(sms.ref), "phone": sms.to.lstrip("+"), "text": sms.text}
            if sms.sender:
                item["sender"] = sms.sender
            messages.append(item)
        try:
            answer = self._call(
                "send", {"statusQueueName": self.status_queue, "messages": messages}, sending=True
            )
        except ProviderError as exc:
            return [exc] * len(batch)
        items = _by_client_id(answer)
        return [_send_result(items.get(str(sms.ref))) for sms in batch]

    # -- statuses --

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        if not queries:
            return {}
        if len(queries) > self.status_batch_size:
            raise ValueError(f"at most {self.status_batch_size} queries per IQSMS status call")
        wanted = [{"clientId": str(q.ref), "smscId": q.provider_message_id} for q in queries]
        answer = self._call("status", {"messages": wanted})
        items = _by_client_id(answer)
        by_smsc_id = {_smsc_id(i): i for i in answer.get("messages") or [] if isinstance(i, Mapping)}
        out: dict[str, StatusUpdate] = {}
        for query in queries:
            item = items.get(str(query.ref)) or by_smsc_id.get(query.provider_message_id)
            status = _status_text(item)
            if status is not None and status != INCORRECT_ID:
                out[query.provider_message_id] = status_update(status)
        return out

    def lookup(self, sms: OutgoingSMS) -> SendResult | None:
        items = _by_client_id(self._call("status", {"messages": [{"clientId": str(sms.ref)}]}))
        item = items.get(str(sms.ref))
        status = _status_text(item)
        if item is None or status is None or status == INCORRECT_ID or not _smsc_id(item):
            return None
        return SendResult(provider_message_id=_smsc_id(item), update=status_update(status))

    def pop_statuses(self, limit: int = QUEUE_LIMIT) -> list[Report]:
        """Take up to `limit` statuses out of this provider's queue (they are gone from IQSMS then)."""
        body = {"statusQueueName": self.status_queue, "statusQueueLimit": limit}
        try:
            answer = self._call("statusQueue", body)
        except PermanentProviderError as exc:
            if exc.code == code_of(QUEUE_EMPTY):
                return []
            raise
        reports = []
        for item in answer.get("messages") or []:
            status = _status_text(item)
            if status is None or status == INCORRECT_ID:
                continue
            client_id = str(item.get("clientId") or "")
            reports.append(
                Report(
                    provider_message_id=_smsc_id(item) or None,
                    update=status_update(status),
                    ref=int(client_id) if client_id.isdigit() else None,
                )
            )
        return reports

    # -- balance --

    def balance(self) -> Balance:
        answer = self._call("balance", {})
        entries = [e for e in answer.get("balance") or [] if isinstance(e, Mapping)]
        entry = next(
            (e for e in entries if str(e.get("type")).upper() == "RUB"), entries[0] if entries else None
        )
        try:
            amount = Decimal(str(entry["balance"])) if entry is not None else None
        except (KeyError, InvalidOperation):
            amount = None
        if amount is None:
            raise TransientProviderError("IQSMS answer has no balance", code="bad_answer")
        kind = str(entry.get("type") or "RUB").upper() if entry is not None else "RUB"
        return Balance(amount=amount, currency=kind if len(kind) == 3 and kind.isalpha() else "RUB")

    # -- the call --

    def _call(self, method: str, body: Mapping[str, Any], *, sending: bool = False) -> Mapping[str, Any]:
        payload = {
            "login": str(self.settings.get("login") or ""),
            "password": str(self.settings.get("password") or ""),
            **body,
        }
        response = self.http(
            "POST",
            f"{self.base_url()}/messages/v2/{method}.json",
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
            allow_redirects=False,
        )
        if response.status_code in (401, 403):
            raise PermanentProviderError(
                f"HTTP {response.status_code}", code=f"http_{response.status_code}", provider_wide=True
            )
        try:
            answer = json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if not isinstance(answer, dict):
            if response.status_code != 200:  # a wrong base_url or a proxy refusing us
                raise PermanentProviderError(
                    f"HTTP {response.status_code}", code=f"http_{response.status_code}", provider_wide=True
                )
            raise TransientProviderError("unreadable IQSMS answer", code="bad_answer", may_have_sent=sending)
        if str(answer.get("status")).lower() != "ok":
            raise error_for(str(answer.get("description") or "error"))
        return answer


def drain_status_queue(
    client: ProviderClient,
    handle: Callable[[list[Report]], None],
    *,
    limit: int = QUEUE_LIMIT,
    max_batches: int = 50,
) -> int:
    """Pop the provider's status queue batch by batch, handing each batch to `handle` (which applies
    it) before popping the next; stops when the queue is empty, a batch comes back short, or after
    `max_batches`. A batch `handle` fails on is lost from the queue: polling (`statuses`) still finds
    those messages. Returns how many statuses were handled."""
    handled = 0
    for _ in range(max_batches):
        reports = client.pop_statuses(limit)
        if reports:
            handle(reports)
            handled += len(reports)
        if len(reports) < limit:
            break
    return handled


def _by_client_id(answer: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    items = answer.get("messages")
    if not isinstance(items, list):
        return {}
    return {
        str(i.get("clientId")): i for i in items if isinstance(i, Mapping) and i.get("clientId") is not None
    }


def _status_text(item: Mapping[str, Any] | None) -> str | None:
    if item is None or not isinstance(item.get("status"), str):
        return None
    return " ".join(item["status"].split()).lower()


def _smsc_id(item: Mapping[str, Any]) -> str:
    value = item.get("smscId")
    return "" if value is None or isinstance(value, bool) else str(value).strip()


def _send_result(item: Mapping[str, Any] | None) -> SendResult | ProviderError:
    status = _status_text(item)
    if item is None or status is None:
        # The request was taken but says nothing of this message: it may well be on its way.
        return TransientProviderError("IQSMS answer has no entry for the message", may_have_sent=True)
    if status not in STATUSES:
        return error_for(status)
    if not _smsc_id(item):
        return TransientProviderError("IQSMS answer has no smscId", code="bad_answer", may_have_sent=True)
    return SendResult(provider_message_id=_smsc_id(item), update=status_update(status))
