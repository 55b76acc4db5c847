"""SMS Traffic: one path, /multi.php, also answered under /reserve (its reserve endpoint: the same
account, so a message sent through either is known to both); form POST with `login` + `password`; XML
answers with HTTP 200 even on errors; send, `operation=status`, `operation=account`; delivery reports
pushed as a form, one per segment, to the behaviour's report URL (SMS Traffic's support sets it).

To script the failover: `endpoints=["main"]` with `error_code=1000` (main answers 1000) or
`fail_http=503` (main unusable) leaves the reserve path healthy. A main that refuses connections is a
base_url on a closed port with this simulator as the reserve (or a second simulator)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

from smsqueue.providers.simulator.dialects.base import Dialect
from smsqueue.providers.simulator.state import Recipient, SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, digits, first_values, form_body, money
from smsqueue.segments import count_segments

CODE_TEXTS = {
    400: "Bad request",
    401: "no such message",
    411: "Authorization failed",
    412: "Address not allowed",
    415: "Not enough money",
    418: "Request would take more than 5 minutes. No messages has been sent",
    420: "Message is too long. No messages has been sent",
    423: "Phone is incorrect. No messages has been sent",
    436: "Originator is forbidden",
    1000: "Temporary error, try later",
}
FIRST_ID = 700000  # message ids look like SMS Traffic's; a segment's is the message's and 3 digits
SEGMENT_DIGITS = 3
MAX_PARTS = 10**SEGMENT_DIGITS - 1
MAX_SECONDS = 300.0  # with want_sms_ids the request waits `gap` per message and must end in 5 minutes
MIN_GAP, DEFAULT_GAP = 0.05, 1.0
MAX_ORIGINATOR = 11
MOSCOW = timezone(timedelta(hours=3))
# rus=0 (the default) sends Cyrillic transliterated; the simulator records what the phone would show.
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_LATIN = (
    *("a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p"),
    *("r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"),
)
_TRANSLIT = {ord(c): lat for c, lat in zip(_CYRILLIC, _LATIN, strict=True)}
_TRANSLIT.update({ord(c.upper()): lat.capitalize() for c, lat in zip(_CYRILLIC, _LATIN, strict=True)})

Line = tuple[str | None, str, str]  # (push_id, phone digits, text)


class SmsTrafficDialect(Dialect):
    kind = "smstraffic"
    routes = {"/multi.php": "send"}  # `operation` picks status or account
    has_reserve = True
    pending_status = "Buffered SMSC"
    delivered_status = "Delivered"
    undelivered_status = "Non Delivered"

    def operation(self, request: SimRequest) -> str | None:
        return {"": "send", "status": "status", "account": "balance"}.get(request.params.get("operation", ""))

    def parse(self, query: str, headers: Mapping[str, str], body: bytes) -> SimRequest:
        request = super().parse(query, headers, body)
        rus = request.params.get("rus", "0")
        if rus != "5":  # only rus=5 reads UTF-8; the others windows-1251, as SMS Traffic does
            raw = "&".join(part for part in (query, body.decode("latin-1")) if part)
            request.params = first_values(raw, "cp1251")
            if rus == "0" and "message" in request.params:
                request.params["message"] = request.params["message"].translate(_TRANSLIT)
        return request

    def authenticate(self, request: SimRequest) -> Reply | None:
        login, password = request.params.get("login"), request.params.get("password")
        accepted = self.credentials
        if not accepted.configured:
            ok = bool(login and password)
        else:
            ok = login == accepted.login and password == (accepted.password or accepted.apikey)
        return None if ok else self.error_reply("auth", 411, request)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        return _error(code)

    # -- send --

    def send(self, state: SimState, request: SimRequest) -> Reply:
        params = request.params
        lines = _lines(params)
        if lines is None or not lines:
            return _error(400, "Bad message lines or no phones")
        if any(not text for _, _, text in lines):
            return _error(400, "Message is empty")
        if any(state.is_bad_number(phone) for _, phone, _ in lines):
            return _error(423)  # one bad number fails the whole request
        sender = params.get("originator") or None
        if sender is not None and len(sender) > MAX_ORIGINATOR:
            return _error(400, "Originator is too long")
        if sender is not None and sender.isdigit() and any(p.startswith("7") for _, p, _ in lines):
            return _error(436)
        parts = [count_segments(text).segments for _, _, text in lines]
        if max(parts) > MAX_PARTS:
            return _error(420)
        want_ids = params.get("want_sms_ids") == "1"
        if want_ids and _gap(params) * len(lines) > MAX_SECONDS:
            return _error(418)
        recipients = [
            Recipient(phone, push_id, text, n, sender)
            for (push_id, phone, text), n in zip(lines, parts, strict=True)
        ]
        accepted = state.accept_each(self.kind, recipients, provider_id=lambda n: str(FIRST_ID + n))
        if accepted is None:
            return _error(415)
        messages = accepted[0]
        infos = ""
        if want_ids:
            for message in messages:
                push = f"<push_id>{escape(message.ref)}</push_id>" if message.ref is not None else ""
                for sms_id in segment_ids(message):
                    infos += f"<message_info><phone>{message.phone}</phone><sms_id>{sms_id}</sms_id>{push}"
                    infos += "</message_info>"
            infos = f"<message_infos>{infos}</message_infos>"
        head = f"<result>OK</result><code>0</code><description>queued {len(messages)} messages</description>"
        return _xml(head + infos)

    # -- status --

    def status(self, state: SimState, request: SimRequest) -> Reply:
        ids = [i.strip() for i in request.params.get("sms_id", "").split(",") if i.strip()]
        if not ids:
            return _error(400, "No sms_id")
        found = [(sms_id, find_segment(state, sms_id)) for sms_id in ids]
        if any(message is None for _, message in found):
            return _error(401)  # past the 2 days, or never sent: the whole call fails
        now = time.time()
        items = [self._status_fields(sms_id, message, now) for sms_id, message in found if message]
        if len(items) == 1:
            return _xml(items[0])
        return _xml("<result>OK</result><code>0</code>" + "".join(f"<sms>{i}</sms>" for i in items))

    def _status_fields(self, sms_id: str, message: SimMessage, now: float) -> str:
        state = message.state(now)
        status = self._status_text(state)
        changed = message.received_at if state == "pending" else message.deliver_at
        return (
            f"<sms_id>{sms_id}</sms_id><submition_date>{_moscow(message.received_at)}</submition_date>"
            f"<send_date>{_moscow(message.received_at)}</send_date>"
            f"<last_status_change_date>{_moscow(changed)}</last_status_change_date>"
            f"<status>{status}</status><error></error>"
        )

    def _status_text(self, state: str) -> str:
        return {"pending": self.pending_status, "delivered": self.delivered_status}.get(
            state, self.undelivered_status
        )

    # -- account and reports --

    def balance(self, state: SimState, request: SimRequest) -> Reply:
        return _xml(f"<account>{money(state.balance_left())}</account>")

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        return self.reports(message)[0]

    def reports(self, message: SimMessage) -> list[tuple[bytes, str]]:
        status = self.undelivered_status if message.undelivered else self.delivered_status
        date = _moscow(message.deliver_at)
        return [
            (form_body({"sms_id": sms_id, "status": status, "delivery_date": date}), _FORM)
            for sms_id in segment_ids(message)
        ]


_FORM = "application/x-www-form-urlencoded"


def segment_ids(message: SimMessage) -> list[str]:
    """The `sms_id` of each segment of a message, in order."""
    return [f"{message.provider_id}{k:0{SEGMENT_DIGITS}d}" for k in range(1, message.parts + 1)]


def find_segment(state: SimState, sms_id: str) -> SimMessage | None:
    """The message one segment's `sms_id` belongs to."""
    if not sms_id.isdigit() or len(sms_id) <= SEGMENT_DIGITS:
        return None
    message = state.find(sms_id[:-SEGMENT_DIGITS])
    if message is None or not 1 <= int(sms_id[-SEGMENT_DIGITS:]) <= message.parts:
        return None
    return message


def _lines(params: Mapping[str, str]) -> list[Line] | None:
    """The messages of a send: `individual_messages` lines (`[push_id:]phone text`), else one text to
    the `phones`; None when a line cannot be read."""
    message = params.get("message", "")
    if params.get("individual_messages") != "1":
        return [(None, digits(p), message) for p in params.get("phones", "").split(",") if p.strip()]
    with_push = params.get("with_push_id") == "1"
    out: list[Line] = []
    for raw in message.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        push_id: str | None = None
        if with_push:
            push_id, found, line = line.partition(":")
            if not found or not push_id.strip():
                return None
            push_id = push_id.strip()
        phone, _, text = line.partition(" ")
        out.append((push_id, digits(phone), text))
    return out


def _gap(params: Mapping[str, str]) -> float:
    try:
        return max(MIN_GAP, float(params.get("gap", DEFAULT_GAP)))
    except ValueError:
        return DEFAULT_GAP


def _moscow(ts: float) -> str:
    return datetime.fromtimestamp(ts, MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def _error(code: int | str, description: str | None = None) -> Reply:
    text = description or CODE_TEXTS.get(code if isinstance(code, int) else 0, "Error")
    return _xml(
        f"<result>ERROR</result><code>{escape(str(code))}</code><description>{escape(text)}</description>"
    )


def _xml(inner: str) -> Reply:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<reply>{inner}</reply>\n'
    return Reply(200, body.encode("utf-8"), "text/xml; charset=utf-8")
