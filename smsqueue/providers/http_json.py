"""Generic JSON-over-HTTP client (kind "http_json"), for an aggregator without a built-in client.

Settings contract (secrets marked *):

| key | default | meaning |
|---|---|---|
| `url` | required | the send endpoint; we POST one JSON object per message |
| `auth_header` | `Authorization` (when `token` is set) | the header that carries the token |
| `token`* | none | that header's value, sent verbatim: include the scheme (`Bearer abc123`) |
| `to_field` | `to` | send body field for the number, E.164 with "+" (`+79161234567`) |
| `text_field` | `text` | send body field for the text (UTF-8, unescaped) |
| `sender_field` | `sender` | send body field for the sender; left out when the message has none |
| `id_path` | `id` | dotted path to the provider's message id in the send answer: `data.id`, `messages.0.id` |
| `status_url` | none | status URL template; `{id}` is the URL-quoted provider id: `https://x/s/{id}` |

Send: `POST url` with `Content-Type: application/json; charset=utf-8` and
`{"<to_field>": "+79161234567", "<text_field>": "...", "<sender_field>": "ACME"}`. A 2xx whose JSON has the id
at `id_path` is accepted; a 2xx without it is ambiguous (the provider probably has the message), so it is
transient with `may_have_sent`. A 401, 402 or 403 is permanent and provider-wide (credentials or funds); any
other 4xx but 429 is permanent (`provider_error:http_<status>`), and one whose JSON body is
`{"error": "invalid_number", ...}` says the number itself is bad: reason `invalid_number` (code
`http_<status>`), no other provider tried; 5xx, 429 and network failures are transient (the base client does
those).

Status: `GET status_url` with the same auth header. The answer is a JSON object with `status` (one of
STATUS_WORDS below) and an optional `reason`. A 404 means the provider does not know the id (left out).
Without `status_url`, no status is known and `statuses` returns nothing (messages then rely on reports).

Reports: the provider POSTs JSON `{"id": "<its message id>", "status": "delivered" | "undelivered" | "failed",
"reason": "<optional code or text>"}` (or a list of such objects) to our report URL; we answer 200
`{"ok": true}`. A body that does not fit is refused (PermanentProviderError, code `bad_report`).

Status words (STATUS_WORDS, case-insensitive); a failure's reason is `provider_error:<reason>`, or
`provider_error:<status word>` without one, and `invalid_number` for the reason `invalid_number`:

| words | our status |
|---|---|
| queued, accepted, pending, sent, enroute | None (in progress) |
| delivered | delivered |
| undelivered, expired | undelivered |
| failed, rejected | failed |

Balance is not part of this contract: `balance` raises PermanentProviderError (code `balance_unsupported`;
the API answers 502). No provider can be asked about an id of ours, so `lookup` is not supported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

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
    Report,
    ReportAnswer,
    SendResult,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
)
from smsqueue.statuses import Reason, Status, provider_error

DEFAULTS: dict[str, str] = {
    "auth_header": "Authorization",
    "to_field": "to",
    "text_field": "text",
    "sender_field": "sender",
    "id_path": "id",
}

STATUS_WORDS: dict[str, Status | None] = {
    "queued": None,
    "accepted": None,
    "pending": None,
    "sent": None,
    "enroute": None,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "expired": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "rejected": Status.FAILED,
}

ACCOUNT_HTTP_STATUSES = frozenset({401, 402, 403})
BAD_NUMBER = "invalid_number"  # the contract's word for "the number itself is bad"
REPORT_ANSWER = ReportAnswer(body='{"ok": true}', status=200, content_type="application/json")
# The provider's reason, cut so that `provider_error:<reason>` fits messages.reason (64 characters).
MAX_REASON_CHARS = 64 - len(provider_error(""))
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HTTP_URL = re.compile(r"^https?://\S+$")


def status_update(word: str, reason: Any = None) -> StatusUpdate:
    """Our update for a status word; raises KeyError for a word outside the contract."""
    status = STATUS_WORDS[word.lower()]
    if status not in (Status.UNDELIVERED, Status.FAILED):
        return StatusUpdate(status, None, word)
    if reason == BAD_NUMBER:
        return StatusUpdate(status, Reason.INVALID_NUMBER, word)
    detail = str(reason).strip()[:MAX_REASON_CHARS] if reason not in (None, "") else word.lower()
    return StatusUpdate(status, provider_error(detail), word)


def value_at(document: Any, path: str) -> Any:
    """The value at a dotted path (`data.id`, `messages.0.id`); None when any step is missing."""
    node = document
    for step in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


class HttpJsonClient(ProviderClient):
    kind = "http_json"
    default_base_url = ""
    settings_keys: ClassVar[frozenset[str]] = frozenset(
        {"url", "auth_header", "token", "to_field", "text_field", "sender_field", "id_path", "status_url"}
    )
    secret_keys: ClassVar[frozenset[str]] = frozenset({"token"})
    status_batch_size = 1
    can_lookup = False
    pushes_reports = True

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        problems = super().validate_settings(settings)
        if not _is_http_url(settings.get("url")):
            problems.append(
                ("settings.url", FieldCode.INVALID_URL, "url is required and must be an http(s) URL")
            )
        status_url = settings.get("status_url")
        if status_url not in (None, "") and not (_is_http_url(status_url) and "{id}" in status_url):
            problems.append(
                (
                    "settings.status_url",
                    FieldCode.INVALID_URL,
                    "status_url must be an http(s) URL containing {id}",
                )
            )
        header = settings.get("auth_header")
        if header not in (None, "") and not (isinstance(header, str) and _HEADER_NAME.match(header)):
            problems.append(
                ("settings.auth_header", FieldCode.INVALID_HEADER, "auth_header must be a header name")
            )
        if header not in (None, "") and settings.get("token") in (None, ""):
            problems.append(
                ("settings.token", FieldCode.REQUIRED, "token is required when auth_header is set")
            )
        for key in ("token", "to_field", "text_field", "sender_field", "id_path"):
            value = settings.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                problems.append((f"settings.{key}", FieldCode.INVALID, f"{key} must be a non-empty string"))
        return problems

    def setting(self, key: str) -> str:
        return str(self.settings.get(key) or DEFAULTS.get(key, ""))

    # -- sending --

    def send(self, sms: OutgoingSMS) -> SendResult:
        body = {self.setting("to_field"): sms.to, self.setting("text_field"): sms.text}
        if sms.sender:
            body[self.setting("sender_field")] = sms.sender
        response = self._request("POST", self.setting("url"), body)
        if _says_bad_number(response):
            code = f"http_{response.status_code}"
            raise InvalidNumber(f"{code}: {BAD_NUMBER}", code=code)
        self._raise_for_status(response)
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            answer = None
        message_id = value_at(answer, self.setting("id_path"))
        if not isinstance(message_id, str | int) or isinstance(message_id, bool) or message_id == "":
            # Accepted (2xx) but no id we can read: the provider most likely has the message.
            raise TransientProviderError(
                f"no message id at {self.setting('id_path')!r} in the answer",
                code="no_id",
                may_have_sent=True,
            )
        return SendResult(provider_message_id=str(message_id))

    # -- statuses --

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        template = self.setting("status_url")
        if not template:
            return {}
        if len(queries) > self.status_batch_size:
            raise ValueError("http_json asks one status per call")
        result: dict[str, StatusUpdate] = {}
        for query in queries:
            url = template.replace("{id}", quote(query.provider_message_id, safe=""))
            response = self._request("GET", url)
            if response.status_code == 404:
                continue  # the provider does not know it
            self._raise_for_status(response)
            update = _status_from_answer(response)
            if update is not None:
                result[query.provider_message_id] = update
        return result

    # -- delivery reports --

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        body = request.json
        items = body if isinstance(body, list) else [body]
        reports = [_report_from(item) for item in items]
        return ParsedReports(reports=reports, answer=REPORT_ANSWER)

    # -- balance --

    def balance(self) -> Balance:
        raise PermanentProviderError(
            "http_json providers have no balance endpoint", code="balance_unsupported"
        )

    # -- helpers --

    def _request(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> requests.Response:
        headers = {"Accept": "application/json"}
        token = self.settings.get("token")
        if token:
            headers[self.setting("auth_header")] = str(token)
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
            kwargs["data"] = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self.http(method, url, **kwargs)

    @staticmethod
    def _raise_for_status(response: requests.Response) -> None:
        """4xx answers (5xx and 429 are already transient errors from the base)."""
        code = response.status_code
        if code < 400:
            return
        raise PermanentProviderError(
            f"HTTP {code} from the provider",
            code=f"http_{code}",
            provider_wide=code in ACCOUNT_HTTP_STATUSES,
        )


def _says_bad_number(response: requests.Response) -> bool:
    """A refusal of this message (a 4xx other than the account's) whose body names a bad number."""
    code = response.status_code
    if not 400 <= code < 500 or code in ACCOUNT_HTTP_STATUSES:
        return False
    try:
        answer = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(answer, Mapping) and answer.get("error") == BAD_NUMBER


def _status_from_answer(response: requests.Response) -> StatusUpdate | None:
    try:
        answer = json.loads(response.content)
    except ValueError:
        return None
    word = answer.get("status") if isinstance(answer, Mapping) else None
    if not isinstance(word, str) or word.lower() not in STATUS_WORDS:
        return None  # nothing we understand: ask again later
    return status_update(word, answer.get("reason"))


def _report_from(item: Any) -> Report:
    if not isinstance(item, Mapping):
        raise PermanentProviderError("report must be a JSON object", code="bad_report")
    message_id, word = item.get("id"), item.get("status")
    if not isinstance(message_id, str | int) or isinstance(message_id, bool) or message_id == "":
        raise PermanentProviderError("report has no id", code="bad_report")
    if not isinstance(word, str) or word.lower() not in STATUS_WORDS:
        raise PermanentProviderError("report status is not one of the contract's words", code="bad_report")
    return Report(provider_message_id=str(message_id), update=status_update(word, item.get("reason")))


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and _HTTP_URL.match(value) is not None
