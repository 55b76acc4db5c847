"""SMS Traffic client (kind "smstraffic"): one endpoint, `multi.php`, on a main and a reserve host.

Wire facts (SMS Traffic HTTP API description v1.85, as summarised in DESIGN.md "Providers"):

- `POST {base_url}/multi.php` (default `https://api.smstraffic.ru`), form-encoded UTF-8, `login` and
  `password` in the body (never in the URL). The same API answers at `{reserve_url}/multi.php` (default
  `https://api2.smstraffic.ru`): a call goes there when the main host answers code 1000, cannot be reached,
  or answers 5xx/429. A send that went out and got no answer is never repeated there: it may have been
  taken (below).
- Answers are XML with HTTP 200 even on errors:
  `<reply><result>OK|ERROR</result><code>N</code><description>...</description><message_infos>
  <message_info><phone>7916...</phone><sms_id>123</sms_id><push_id>42</push_id></message_info>...
  </message_infos></reply>`. A DTD in an answer is refused (no entity expansion).
- Send: `individual_messages=1` + `with_push_id=1` and `message` = lines `<our ref>:<phone> <text>`, so
  each `message_info` names its message by `push_id` (one `message_info` per segment: the segments'
  `sms_id`s, joined by commas, are our provider_message_id). `rus=5` always (UTF-8 in, UCS-2 out; the
  default `rus=0` transliterates Cyrillic), `want_sms_ids=1`, `gap=0.05` (the minimum: with
  `want_sms_ids` the request waits `gap` per message and must end within 5 minutes, else 418),
  `originator` when the message has a sender (at most 11 characters; a numeric one is refused for
  Russian numbers). `ttl_seconds` is not sent (no validity parameter is relied on). A text with a line
  break cannot be a line of `message`: it goes alone, with `phones`, and its `message_info`s are bound
  by the phone.
- A request with one bad number fails whole ("no messages has been sent"). `send_many` checks the
  numbers first and, when a batch still fails with an error one message can cause, sends each alone:
  only the bad one fails.
- Status: `operation=status&sms_id=a,b,...` -> for each id an element with `<sms_id>` and `<status>`
  (nested anywhere in the reply): `Buffered SMSC` or empty (sent), `Delivered`, `Non Delivered`,
  `Expired`, `Rejected`, `Deleted`, `Unknown`. SMS Traffic keeps statuses 2 days (`status_window`), then
  answers "no such message": such ids are left out, and a batch refused for one of them is asked again
  one message at a time.
- Delivery reports: a form POST of `sms_id`, `status`, `delivery_date` (Moscow time) to the URL SMS
  Traffic's support sets for the account; answered 200 `OK`. A report names one segment's `sms_id`:
  matched by the exact provider_message_id, it settles a one-segment message; a longer one, whose id
  joins its segments', is settled by polling.
- Balance: `operation=account` -> `<account>123.45</account>`, in roubles.
- There is no lookup by our id: a send whose answer never came is `may_have_sent`, and `lookup` raises
  LookupNotSupported, so the message ends `unknown_outcome` rather than risk a second SMS.

Codes (`<code>` of an ERROR reply) and what they become (reason `provider_error:<code>`):

| code | meaning | raised as |
|---|---|---|
| 1000 | temporary failure | the reserve endpoint; then TransientProviderError |
| 411, 412, 415 | auth failed, address not allowed, no funds | PermanentProviderError, provider_wide |
| 418 | the request cannot finish in 5 minutes | TransientProviderError (nothing sent) |
| 420, 424, 437 | text too long | PermanentProviderError (another provider may take it) |
| 422, 423, 425-432 | number problems | PermanentProviderError, number_problem |
| 436 | originator forbidden | PermanentProviderError |
| any other | request errors | PermanentProviderError |

In a batch, 418, 420-437 and the other request errors make each message be sent alone; 1000 (after
the reserve) and 411/412/415 are the same for every message of the batch.

Statuses (STATUSES), case-insensitive, reason `provider_error:<status, snake_case>` on failures:

| status | our status |
|---|---|
| empty, `Buffered SMSC`, `Unknown` | None (in progress: the status window or timeout ends it) |
| `Delivered` | delivered |
| `Non Delivered`, `Expired`, `Deleted` | undelivered |
| `Rejected` | failed |

A message of several segments is delivered when every segment is; the first failed, else undelivered,
segment decides otherwise; a segment still in progress keeps it in progress.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from smsqueue.providers.base import (
    Balance,
    IncomingRequest,
    OutgoingSMS,
    ParsedReports,
    PermanentProviderError,
    ProviderClient,
    ProviderError,
    Report,
    ReportAnswer,
    SendResult,
    SettingProblem,
    StatusQuery,
    StatusUpdate,
    TransientProviderError,
    required_problems,
    url_problems,
)
from smsqueue.providers.smsc import check_http_status
from smsqueue.statuses import Status, provider_error

log = logging.getLogger(__name__)

PATH = "/multi.php"
TEMPORARY = 1000
PROVIDER_WIDE_CODES = frozenset({411, 412, 415})
TRANSIENT_CODES = frozenset({418})
TEXT_TOO_LONG_CODES = frozenset({420, 424, 437})
NUMBER_CODES = frozenset({422, 423, *range(425, 433)})
ORIGINATOR_FORBIDDEN = 436
CODE_TEXTS: dict[int, str] = {
    TEMPORARY: "temporary failure",
    411: "authorization failed",
    412: "address not allowed",
    415: "not enough funds",
    418: "the request cannot finish in 5 minutes",
    ORIGINATOR_FORBIDDEN: "originator forbidden",
    **dict.fromkeys(TEXT_TOO_LONG_CODES, "text too long"),
    **dict.fromkeys(NUMBER_CODES, "bad number"),
}

STATUSES: dict[str, Status | None] = {
    "": None,
    "buffered smsc": None,
    "unknown": None,
    "delivered": Status.DELIVERED,
    "non delivered": Status.UNDELIVERED,
    "expired": Status.UNDELIVERED,
    "deleted": Status.UNDELIVERED,
    "rejected": Status.FAILED,
}
NO_SUCH_MESSAGE = "no such message"
MAX_BATCH = 50  # messages per send request: 2.5 s of `gap`, well inside the call's timeout
MAX_ID_LENGTH = 128  # messages.provider_message_id
MAX_ORIGINATOR = 11
GAP = "0.05"
REPORT_ANSWER = ReportAnswer("OK")
_NUMBER = re.compile(r"^\d{10,15}$")


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    code: int | None
    description: str
    root: ET.Element


class SmsTrafficClient(ProviderClient):
    kind = "smstraffic"
    default_base_url = "https://api.smstraffic.ru"
    default_reserve_url = "https://api2.smstraffic.ru"
    settings_keys = frozenset({"base_url", "reserve_url", "login", "password"})
    secret_keys = frozenset({"password"})
    status_batch_size = 50  # messages; each may carry several segment ids
    can_lookup = False
    pushes_reports = True  # to the URL SMS Traffic's support sets for the account
    status_window: ClassVar[timedelta | None] = timedelta(days=2)  # statuses are kept this long
    send_batch_size: ClassVar[int] = MAX_BATCH

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[SettingProblem]:
        return [
            *super().validate_settings(settings),
            *url_problems(settings, "base_url", "reserve_url"),
            *required_problems(settings, "login", "password"),
        ]

    def endpoints(self) -> list[str]:
        """The main endpoint, then the reserve one (unless they are the same)."""
        reserve = str(self.settings.get("reserve_url") or self.default_reserve_url).rstrip("/")
        main = self.base_url()
        return [main + PATH] if reserve == main else [main + PATH, reserve + PATH]

    # -- sending --

    def send(self, sms: OutgoingSMS) -> SendResult:
        result = self.send_many([sms])[0]
        if isinstance(result, ProviderError):
            raise result
        return result

    def send_many(self, batch: Sequence[OutgoingSMS]) -> list[SendResult | ProviderError]:
        """Send up to `send_batch_size` messages; each one's result or error, in order. A bad number
        fails its own message only."""
        if len(batch) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per SMS Traffic request")
        results: dict[int, SendResult | ProviderError] = {}
        by_sender: dict[str | None, list[int]] = {}  # `originator` is one per request
        for index, sms in enumerate(batch):
            problem = _local_problem(sms)
            if problem is not None:
                results[index] = problem
            elif "\n" in sms.text or "\r" in sms.text:
                results[index] = self._send_alone(sms)
            else:
                by_sender.setdefault(sms.sender or None, []).append(index)
        for indexes in by_sender.values():
            results.update(self._send_lines([batch[i] for i in indexes], indexes))
        return [results[i] for i in range(len(batch))]

    def _send_lines(
        self, group: list[OutgoingSMS], indexes: list[int]
    ) -> dict[int, SendResult | ProviderError]:
        fields = {
            "message": "\n".join(f"{sms.ref}:{_digits(sms.to)} {sms.text}" for sms in group),
            "individual_messages": "1",
            "with_push_id": "1",
            **_common_fields(group),
        }
        try:
            reply = self._call(fields, sending=True)
        except PermanentProviderError as exc:
            if len(group) > 1 and not exc.provider_wide:
                # Nothing was sent; the culprit fails alone, the others go through.
                return {i: self._one(sms) for i, sms in zip(indexes, group, strict=True)}
            return dict.fromkeys(indexes, exc)
        except TransientProviderError as exc:
            if len(group) > 1 and exc.code == "418":
                return {i: self._one(sms) for i, sms in zip(indexes, group, strict=True)}
            return dict.fromkeys(indexes, exc)
        by_push = _sms_ids(reply.root, "push_id")
        by_phone = _sms_ids(reply.root, "phone")
        phones = [_digits(sms.to) for sms in group]
        out: dict[int, SendResult | ProviderError] = {}
        for index, sms, phone in zip(indexes, group, phones, strict=True):
            ids = by_push.get(str(sms.ref)) or (by_phone.get(phone) if phones.count(phone) == 1 else None)
            out[index] = _result(ids)
        return out

    def _one(self, sms: OutgoingSMS) -> SendResult | ProviderError:
        return self._send_lines([sms], [0])[0]

    def _send_alone(self, sms: OutgoingSMS) -> SendResult | ProviderError:
        fields = {"phones": _digits(sms.to), "message": sms.text, **_common_fields([sms])}
        try:
            reply = self._call(fields, sending=True)
        except ProviderError as exc:
            return exc
        ids = _sms_ids(reply.root, "phone").get(_digits(sms.to))
        if not ids:  # a single message: every message_info is ours, whatever phone it echoes
            ids = [i for group in _sms_ids(reply.root, "phone").values() for i in group]
        return _result(ids)

    # -- statuses --

    def statuses(self, queries: Sequence[StatusQuery]) -> dict[str, StatusUpdate]:
        if not queries:
            return {}
        if len(queries) > self.status_batch_size:
            raise ValueError(f"at most {self.status_batch_size} queries per SMS Traffic status call")
        try:
            items = self._status_items([i for q in queries for i in _segments(q.provider_message_id)])
        except PermanentProviderError as exc:
            if not _no_such_message(exc):
                raise
            if len(queries) == 1:
                return {}  # past the window: SMS Traffic no longer knows it
            # One id past the window refuses the batch: ask for each message alone.
            return {k: v for q in queries for k, v in self.statuses([q]).items()}
        out: dict[str, StatusUpdate] = {}
        for query in queries:
            update = combine([items.get(i) for i in _segments(query.provider_message_id)])
            if update is not None:
                out[query.provider_message_id] = update
        return out

    def _status_items(self, ids: list[str]) -> dict[str, StatusUpdate]:
        reply = self._call({"operation": "status", "sms_id": ",".join(ids)})
        found: dict[str, StatusUpdate] = {}
        for element in reply.root.iter():
            sms_id, status = element.findtext("sms_id"), element.find("status")
            if sms_id and status is not None and sms_id.strip() in ids:
                text = (status.text or "").strip()
                if NO_SUCH_MESSAGE not in text.lower():
                    found[sms_id.strip()] = status_update(text)
        return found

    # -- reports --

    def parse_report(self, request: IncomingRequest) -> ParsedReports:
        sms_id, status = request.first("sms_id"), request.first("status")
        if not sms_id or status is None:
            return ParsedReports(reports=[], answer=REPORT_ANSWER)
        report = Report(provider_message_id=sms_id.strip(), update=status_update(status))
        return ParsedReports(reports=[report], answer=REPORT_ANSWER)

    # -- balance --

    def balance(self) -> Balance:
        reply = self._call({"operation": "account"})
        try:
            amount = Decimal((reply.root.findtext(".//account") or "").strip().replace(",", "."))
        except InvalidOperation:
            raise TransientProviderError("SMS Traffic answer has no account", code="bad_answer") from None
        return Balance(amount=amount, currency="RUB")

    # -- the call --

    def _call(self, fields: Mapping[str, str], *, sending: bool = False) -> Reply:
        """POST to the main endpoint, then the reserve one on 1000 or a failure that sent nothing."""
        data = {
            "login": str(self.settings.get("login") or ""),
            "password": str(self.settings.get("password") or ""),
        }
        data.update(fields)
        error: ProviderError | None = None
        for url in self.endpoints():
            try:
                response = self.http("POST", url, data=data, allow_redirects=False)
            except TransientProviderError as exc:
                if exc.may_have_sent and sending:
                    raise  # the main host may have the message: never hand it to the reserve too
                error = exc
                continue
            check_http_status(response, sending=sending)
            reply = parse_reply(response.content, sending=sending)
            if reply.ok:
                return reply
            error = error_for(reply.code, reply.description)
            if reply.code != TEMPORARY:
                raise error
        assert error is not None
        raise error


# --- mapping: plain functions, so tests can check every table entry without HTTP -------------------------


def error_for(code: int | None, description: str = "") -> ProviderError:
    text = CODE_TEXTS.get(code or 0, "request error")
    message = f"SMS Traffic error {code}: {text}"
    if NO_SUCH_MESSAGE in description.lower():
        message += f" ({NO_SUCH_MESSAGE})"
    if code == TEMPORARY or code in TRANSIENT_CODES:
        return TransientProviderError(message, code=code)
    return PermanentProviderError(
        message,
        code=code if code is not None else "error",
        number_problem=code in NUMBER_CODES,
        provider_wide=code in PROVIDER_WIDE_CODES,
    )


def status_update(text: str) -> StatusUpdate:
    key = " ".join(text.split()).lower()
    if key not in STATUSES:
        log.warning("undocumented SMS Traffic status %r kept in progress", text[:40])
    status = STATUSES.get(key)
    failed = status in (Status.UNDELIVERED, Status.FAILED)
    raw = text.strip()[:64] or None
    return StatusUpdate(status, provider_error(key.replace(" ", "_")) if failed else None, raw)


def combine(segments: Sequence[StatusUpdate | None]) -> StatusUpdate | None:
    """One message's status from its segments' (None: a segment SMS Traffic did not report)."""
    known = [s for s in segments if s is not None]
    if not known:
        return None
    for final in (Status.FAILED, Status.UNDELIVERED):
        for segment in known:
            if segment.status is final:
                return segment
    if len(known) == len(segments) and all(s.status is Status.DELIVERED for s in known):
        return known[0]
    return next((s for s in known if s.status is None), StatusUpdate(None))


def parse_reply(content: bytes, *, sending: bool) -> Reply:
    head = content[:2048].lower()
    try:
        if b"<!doctype" in head or b"<!entity" in content.lower():
            raise ValueError("a DTD in the answer")
        root = ET.fromstring(content)
    except (ET.ParseError, ValueError):
        # Something answered 200 with a body we cannot read: a send may have gone through.
        raise TransientProviderError(
            "unreadable SMS Traffic answer", code="bad_answer", may_have_sent=sending
        ) from None
    result = (root.findtext("result") or "").strip().upper()
    code_text = (root.findtext("code") or "").strip()
    code = int(code_text) if code_text.isdigit() else None
    description = (root.findtext("description") or "").strip()
    if result not in ("OK", "ERROR") and root.find(".//account") is None and root.find(".//status") is None:
        raise TransientProviderError(
            "SMS Traffic answer has no result", code="bad_answer", may_have_sent=sending
        )
    return Reply(ok=result != "ERROR", code=code, description=description, root=root)


def _sms_ids(root: ET.Element, key: str) -> dict[str, list[str]]:
    """`sms_id`s of the answer's message_infos grouped by `key` (push_id or phone), in answer order."""
    grouped: dict[str, list[str]] = {}
    for info in root.iter("message_info"):
        name, sms_id = (info.findtext(key) or "").strip(), (info.findtext("sms_id") or "").strip()
        if name and sms_id:
            grouped.setdefault(_digits(name) if key == "phone" else name, []).append(sms_id)
    return grouped


def _result(ids: list[str] | None) -> SendResult | ProviderError:
    if not ids:
        # The request was taken but does not name this message: it may well be on its way.
        return TransientProviderError("SMS Traffic answer has no sms_id for the message", may_have_sent=True)
    joined = ids[0]
    for more in ids[1:]:  # whole ids only, within the column: the first segments decide then
        if len(joined) + 1 + len(more) > MAX_ID_LENGTH:
            break
        joined += "," + more
    return SendResult(provider_message_id=joined)


def _segments(provider_message_id: str) -> list[str]:
    return [part for part in provider_message_id.split(",") if part]


def _common_fields(group: Sequence[OutgoingSMS]) -> dict[str, str]:
    fields = {"rus": "5", "want_sms_ids": "1", "gap": GAP}
    if group[0].sender:  # send_many groups the messages by sender
        fields["originator"] = group[0].sender
    return fields


def _local_problem(sms: OutgoingSMS) -> ProviderError | None:
    """What SMS Traffic would refuse, found before the call so it fails no other message."""
    if not _NUMBER.match(_digits(sms.to)) or not sms.to.lstrip("+").isdigit():
        return PermanentProviderError(
            "not a number SMS Traffic takes", code="bad_number", number_problem=True
        )
    sender = sms.sender or ""
    if len(sender) > MAX_ORIGINATOR:
        return PermanentProviderError("originator longer than 11 characters", code="originator_too_long")
    if sender.isdigit() and _digits(sms.to).startswith("7"):
        return PermanentProviderError("numeric originator to a Russian number", code="numeric_originator")
    return None


def _no_such_message(exc: ProviderError) -> bool:
    return NO_SUCH_MESSAGE in exc.message.lower()


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())
