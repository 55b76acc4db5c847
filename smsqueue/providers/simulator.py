"""A local provider that speaks a real aggregator's wire format, so the whole pipeline runs over HTTP.

Used by tests (in-process), benchmarks and `make run` (as a process):

    sim = Simulator(kind="smsc")          # binds 127.0.0.1 on a free port
    sim.start()
    ...  # point a provider's base_url at sim.url
    sim.received()                        # every accepted send, in order
    sim.set_behaviour(fail_http=500, fail_http_times=2)
    sim.stop()

    smsqueue simulator --kind smsc --port 9001 [--delivery-delay 0.5 --report-url URL ...]

Dialects ("kinds"), each a class below: `smsc` (SMSC.ru: /sys/send.php, /sys/status.php,
/sys/balance.php, fmt=3 JSON), `smsru` (SMS.ru: /sms/send, /sms/status, /my/balance, json=1) and
`smsaero` (SMS Aero v2: /v2/sms/send, /v2/sms/status, /v2/balance, HTTP Basic). A new dialect is a
`Dialect` subclass registered in `DIALECTS`.

What it does with a message: records it (see `SimMessage`), answers like the provider, reports it in
progress until `delivery_delay` seconds have passed, then delivered (or, for a share of
`undelivered_share`, undelivered), and, when a report URL is set, pushes the provider's own delivery
report there from a background thread (a failed push is counted, never raised).

Control and inspection endpoints (JSON):

    GET  /_sim/messages      every accepted send (filters: ?ref=..&phone=..)
    GET  /_sim/stats         request and message counts, duplicates by our id, report pushes
    POST /_sim/reset         forget messages and counts; restore the behaviour given at start
    GET  /_sim/behaviour     the current behaviour
    POST /_sim/behaviour     change some of it: {"fail_http": 500, "fail_http_times": 1}

Behaviour keys (also CLI flags, `-` for `_`): `delivery_delay` (s, default 0.5; 0 = at once),
`undelivered_share` (0..1), `fail_http` (answer this HTTP status), `fail_http_times` (only the next N
requests; null = until changed), `error_code` (answer this provider error code), `error_code_times`,
`delay_seconds` (take the request at once but answer this late), `delay_times`, `affects` (which
operations the last three apply to: any of "send", "status", "balance"; default ["send"]),
`report_url` (push delivery reports there), `balance` (account money, RUB), `price` (per SMS part).

Credentials: any are accepted unless `login`/`password`/`apikey` are given; then wrong ones get the
provider's bad-login answer.

It is built for speed (>= 2000 send requests/s on 2 cores with keep-alive clients): a threading HTTP/1.1
server, one write per response, Nagle off, no request logging, one short lock per request.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import random
import signal
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qs, urlencode

import requests

log = logging.getLogger(__name__)

OPERATIONS = ("send", "status", "balance")
DEFAULT_PORT = 9001
REPORT_TIMEOUT = 5.0
MAX_LISTED = 1000  # duplicates listed by /_sim/stats; `duplicate_refs` counts them all


# --- behaviour ------------------------------------------------------------------------------------------


@dataclass
class Behaviour:
    """What the simulator does; every field can be changed at run time (see the module docstring)."""

    delivery_delay: float = 0.5
    undelivered_share: float = 0.0
    fail_http: int | None = None
    fail_http_times: int | None = None
    error_code: int | str | None = None
    error_code_times: int | None = None
    delay_seconds: float = 0.0
    delay_times: int | None = None
    affects: tuple[str, ...] = ("send",)
    report_url: str | None = None
    balance: float = 10000.0
    price: float = 1.5

    def changed(self, changes: Mapping[str, Any]) -> Behaviour:
        """A copy with `changes` applied; ValueError names every bad key or value."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown behaviour keys: {', '.join(unknown)}")
        values = {name: _coerce(name, value) for name, value in changes.items()}
        return replace(self, **values)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["affects"] = list(self.affects)
        return data


_FLOATS = {"delivery_delay", "undelivered_share", "delay_seconds", "balance", "price"}
_OPTIONAL_INTS = {"fail_http", "fail_http_times", "error_code_times", "delay_times"}


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _FLOATS:
            number = float(value)
            if number < 0 or (name == "undelivered_share" and number > 1):
                raise ValueError
            return number
        if name in _OPTIONAL_INTS:
            return None if value is None else int(value)
        if name == "error_code":
            return None if value is None else (int(value) if str(value).lstrip("-").isdigit() else str(value))
        if name == "report_url":
            return str(value) if value else None
        if name == "affects":
            affects = (value,) if isinstance(value, str) else tuple(value)
            if not set(affects) <= set(OPERATIONS):
                raise ValueError
            return affects
    except (TypeError, ValueError):
        raise ValueError(f"bad value for {name}: {value!r}") from None
    raise ValueError(f"unknown behaviour key: {name}")


# --- what is recorded -----------------------------------------------------------------------------------


@dataclass(slots=True)  # benchmarks keep hundreds of thousands of these
class SimMessage:
    """One accepted send to one number."""

    kind: str
    ref: str | None  # our id, where the dialect takes one (SMSC `id`)
    phone: str  # digits only, as the provider keeps it
    text: str
    sender: str | None
    received_at: float  # unix time
    provider_id: str
    undelivered: bool
    deliver_at: float
    report_url: str | None = None
    parts: int = 1

    def state(self, now: float) -> str:
        if now < self.deliver_at:
            return "pending"
        return "undelivered" if self.undelivered else "delivered"

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "phone": self.phone,
            "text": self.text,
            "sender": self.sender,
            "received_at": _iso(self.received_at),
            "received_ts": self.received_at,
            "provider_id": self.provider_id,
            "parts": self.parts,
            "state": self.state(now),
            "deliver_at": _iso(self.deliver_at),
        }


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


@dataclass
class SimRequest:
    method: str
    path: str
    params: dict[str, str]  # query string and form body, first value of each, decoded
    headers: Mapping[str, str]
    body: bytes
    json: Any = None


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def text_reply(text: str, status: int = 200) -> Reply:
    return Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8")


# --- dialects -------------------------------------------------------------------------------------------


class Dialect(ABC):
    """One provider's wire format: its paths, answers, errors and delivery-report callback."""

    kind: ClassVar[str]
    routes: ClassVar[dict[str, str]]  # path -> operation ("send", "status", "balance")

    def parse(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> SimRequest:
        raw = query
        if body and "x-www-form-urlencoded" in headers.get("Content-Type", ""):
            raw = f"{raw}&{body.decode('latin-1')}" if raw else body.decode("latin-1")
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True, encoding="utf-8").items()}
        return SimRequest(method, path, params, headers, body)

    @abstractmethod
    def authenticate(self, sim: Simulator, request: SimRequest) -> Reply | None:
        """None when the credentials are acceptable, else the provider's bad-login answer."""

    @abstractmethod
    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        """The provider's answer carrying its own error `code`."""

    @abstractmethod
    def send(self, sim: Simulator, request: SimRequest) -> Reply: ...

    @abstractmethod
    def status(self, sim: Simulator, request: SimRequest) -> Reply: ...

    @abstractmethod
    def balance(self, sim: Simulator, request: SimRequest) -> Reply: ...

    @abstractmethod
    def report(self, message: SimMessage) -> tuple[bytes, str]:
        """The delivery report the provider pushes for a final message: (body, content type)."""


# SMSC.ru ------------------------------------------------------------------------------------------------

SMSC_MAX_ID = 2_147_483_647
SMSC_ERRORS = {
    1: "parameters error",
    2: "authorise error",
    3: "no money",
    4: "IP is blocked",
    5: "invalid date format",
    6: "message is denied",
    7: "invalid phone format",
    8: "cannot deliver message",
    9: "duplicate request, wait a minute",
}
SMSC_CHARSETS = {"utf-8": "utf-8", "koi8-r": "koi8-r", "windows-1251": "cp1251"}


class SmscDialect(Dialect):
    kind = "smsc"
    routes = {"/sys/send.php": "send", "/sys/status.php": "status", "/sys/balance.php": "balance"}
    pending_status = 0  # "handed to the operator"
    delivered_status = 1
    undelivered_status = 20  # "cannot be delivered"
    undelivered_err = 6  # "subscriber offline"

    def parse(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> SimRequest:
        request = super().parse(method, path, query, headers, body)
        # SMSC decodes by the `charset` parameter and defaults to windows-1251: a client that forgets
        # charset=utf-8 gets its Cyrillic garbled here as it would there.
        charset = SMSC_CHARSETS.get(request.params.get("charset", "windows-1251").lower(), "cp1251")
        if charset != "utf-8":
            raw = "&".join(part for part in (query, body.decode("latin-1")) if part)
            decoded = parse_qs(raw, keep_blank_values=True, encoding=charset, errors="replace")
            request.params = {k: v[0] for k, v in decoded.items()}
        return request

    def authenticate(self, sim: Simulator, request: SimRequest) -> Reply | None:
        params = request.params
        if sim.apikey and params.get("apikey") == sim.apikey:
            return None
        login, psw = params.get("login"), params.get("psw")
        if sim.login is None and sim.password is None and sim.apikey is None:
            ok = bool(params.get("apikey")) or bool(login and psw)
        else:
            ok = login == sim.login and psw is not None and _password_matches(psw, sim.password)
        return None if ok else self.error_reply("auth", 2, request)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        answer: dict[str, Any] = {"error": SMSC_ERRORS.get(_as_int(code) or 0, "error"), "error_code": code}
        ref = request.params.get("id")
        if operation == "send" and ref and ref.isdigit() and int(ref) > 0:
            answer["id"] = int(ref)
        return json_reply(answer)

    def send(self, sim: Simulator, request: SimRequest) -> Reply:
        params = request.params
        phones = [p.strip() for p in params.get("phones", "").replace(";", ",").split(",") if p.strip()]
        text = params.get("mes")
        ref = params.get("id", "")
        if not phones or text is None or (ref and not _valid_smsc_id(ref)):
            return self.error_reply("send", 1, request)
        digits = [_digits(p) for p in phones]
        if any(not 10 <= len(d) <= 15 for d in digits):
            return self.error_reply("send", 7, request)
        parts = segments(text)
        if params.get("cost") == "1":  # "how much would it cost", nothing sent
            return json_reply({"cost": _money(sim.behaviour.price * parts * len(digits)), "cnt": parts})
        accepted = sim.accept(
            self.kind,
            [(d, ref if ref and ref != "0" else None) for d in digits],
            text,
            params.get("sender"),
            parts,
            provider_id=lambda n: ref if ref and ref != "0" else str(n),
        )
        if accepted is None:
            return self.error_reply("send", 3, request)
        messages, balance = accepted
        answer: dict[str, Any] = {"id": int(messages[0].provider_id), "cnt": parts * len(messages)}
        if params.get("cost") in ("2", "3"):
            answer["cost"] = _money(sim.behaviour.price * parts * len(messages))
            answer["balance"] = _money(balance)
        return json_reply(answer)

    def status(self, sim: Simulator, request: SimRequest) -> Reply:
        ids_param, phones_param = request.params.get("id", ""), request.params.get("phone", "")
        listed = "," in ids_param or "," in phones_param
        ids = [i for i in ids_param.split(",") if i.strip()]
        phones = [p for p in phones_param.split(",") if p.strip()]
        if not ids or len(ids) != len(phones):
            return self.error_reply("status", 1, request)
        now = time.time()
        items = [
            self._status_item(sim.find(i.strip(), _digits(p)), i.strip(), p, now)
            for i, p in zip(ids, phones, strict=True)
        ]
        if listed:
            return json_reply(items)
        single = items[0]
        single.pop("id", None)
        single.pop("phone", None)
        return json_reply(single)

    def _status_item(self, message: SimMessage | None, ref: str, phone: str, now: float) -> dict[str, Any]:
        item: dict[str, Any]
        if message is None:
            item = {"status": -3, "last_date": "", "last_timestamp": 0, "err": 0}
        else:
            state = message.state(now)
            changed = message.received_at if state == "pending" else message.deliver_at
            item = {
                "status": self._code(state),
                "last_date": datetime.fromtimestamp(changed).strftime("%d.%m.%Y %H:%M:%S"),
                "last_timestamp": int(changed),
                "err": self.undelivered_err if state == "undelivered" else 0,
            }
        item["id"] = int(ref) if ref.isdigit() else ref
        item["phone"] = _digits(phone)
        return item

    def _code(self, state: str) -> int:
        return {"pending": self.pending_status, "delivered": self.delivered_status}.get(
            state, self.undelivered_status
        )

    def balance(self, sim: Simulator, request: SimRequest) -> Reply:
        answer: dict[str, Any] = {"balance": _money(sim.balance_left())}
        if request.params.get("cur") == "1":
            answer["currency"] = "RUB"
        return json_reply(answer)

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        state = "undelivered" if message.undelivered else "delivered"
        form = {
            "id": message.provider_id,
            "phone": message.phone,
            "status": str(self._code(state)),
            "err": str(self.undelivered_err if message.undelivered else 0),
        }
        return _form_body(form), "application/x-www-form-urlencoded"


# SMS.ru -------------------------------------------------------------------------------------------------

SMSRU_REQUEST_ERRORS = frozenset({200, 201, 210, 211, 220, 300, 301, 302, 500, 901})
SMSRU_TEXTS = {
    100: "Запрос выполнен",
    102: "Сообщение отправлено (в пути)",
    103: "Сообщение доставлено",
    106: "Сообщение не может быть доставлено: неудача на телефоне",
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",  # noqa: RUF001
    202: "Неправильно указан номер телефона получателя",
    203: "Нет текста сообщения",
    -1: "Сообщение не найдено",
}


class SmsRuDialect(Dialect):
    kind = "smsru"
    routes = {"/sms/send": "send", "/sms/status": "status", "/my/balance": "balance"}
    pending_code = 102
    delivered_code = 103
    undelivered_code = 106

    def authenticate(self, sim: Simulator, request: SimRequest) -> Reply | None:
        api_id = request.params.get("api_id")
        expected = sim.apikey or sim.password
        ok = api_id == expected if expected else bool(api_id)
        return None if ok else self.error_reply("auth", 200, request)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        number = _as_int(code)
        text = SMSRU_TEXTS.get(number or 0, "Ошибка")
        if operation == "send" and number not in SMSRU_REQUEST_ERRORS:
            sms = {
                _digits(p): {"status": "ERROR", "status_code": code, "status_text": text}
                for p in request.params.get("to", "").split(",")
                if p.strip()
            }
            return json_reply({"status": "OK", "status_code": 100, "sms": sms, "balance": 0})
        return json_reply({"status": "ERROR", "status_code": code, "status_text": text})

    def send(self, sim: Simulator, request: SimRequest) -> Reply:
        numbers = [_digits(p) for p in request.params.get("to", "").split(",") if p.strip()]
        text = request.params.get("msg")
        if not text:
            return self.error_reply("send", 203, request)
        good = [n for n in numbers if 10 <= len(n) <= 15]
        sms: dict[str, Any] = {
            n: {"status": "ERROR", "status_code": 202, "status_text": SMSRU_TEXTS[202]}
            for n in numbers
            if n not in good
        }
        balance = sim.balance_left()
        if good:
            parts = segments(text)
            accepted = sim.accept(
                self.kind,
                [(n, None) for n in good],
                text,
                request.params.get("from"),
                parts,
                provider_id=lambda n: f"000000-{10000000 + n}",
            )
            if accepted is None:
                return self.error_reply("send", 201, request)
            messages, balance = accepted
            for message in messages:
                sms[message.phone] = {"status": "OK", "status_code": 100, "sms_id": message.provider_id}
        return json_reply({"status": "OK", "status_code": 100, "sms": sms, "balance": round(balance, 2)})

    def status(self, sim: Simulator, request: SimRequest) -> Reply:
        ids = [i.strip() for i in request.params.get("sms_id", "").split(",") if i.strip()]
        now = time.time()
        sms: dict[str, Any] = {}
        for sms_id in ids:
            message = sim.find(sms_id)
            if message is None:
                sms[sms_id] = {"status": "ERROR", "status_code": -1, "status_text": SMSRU_TEXTS[-1]}
                continue
            code = self._code(message.state(now))
            sms[sms_id] = {"status": "OK", "status_code": code, "status_text": SMSRU_TEXTS[code]}
        return json_reply(
            {"status": "OK", "status_code": 100, "sms": sms, "balance": round(sim.balance_left(), 2)}
        )

    def _code(self, state: str) -> int:
        return {"pending": self.pending_code, "delivered": self.delivered_code}.get(
            state, self.undelivered_code
        )

    def balance(self, sim: Simulator, request: SimRequest) -> Reply:
        return json_reply({"status": "OK", "status_code": 100, "balance": round(sim.balance_left(), 2)})

    def __init__(self, api_id: str | None = None) -> None:
        self.api_id = api_id  # signs reports when known (configured); SMS.ru's hash is optional to check

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        code = self.undelivered_code if message.undelivered else self.delivered_code
        # SMS.ru posts data[N] = "sms_status\n<sms_id>\n<code>\n<unix time>" plus hash =
        # sha256(api_id + the data entries), and wants the plain text "100" back.
        line = f"sms_status\n{message.provider_id}\n{code}\n{int(message.deliver_at)}"
        form = {"data[0]": line}
        if self.api_id:
            form["hash"] = hashlib.sha256((self.api_id + line).encode("utf-8")).hexdigest()
        return _form_body(form), "application/x-www-form-urlencoded"


# SMS Aero v2 --------------------------------------------------------------------------------------------


class SmsAeroDialect(Dialect):
    kind = "smsaero"
    routes = {"/v2/sms/send": "send", "/v2/sms/status": "status", "/v2/balance": "balance"}
    queued = (0, "queue")
    pending = (3, "smsc submit")
    delivered = (1, "delivery success")
    undelivered = (2, "delivery failure")

    def parse(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> SimRequest:
        request = super().parse(method, path, query, headers, body)
        if body and "json" in headers.get("Content-Type", ""):
            try:
                request.json = json.loads(body.decode("utf-8"))
            except ValueError:
                request.json = None
            if isinstance(request.json, dict):
                request.params.update({k: str(v) for k, v in request.json.items() if v is not None})
        return request

    def authenticate(self, sim: Simulator, request: SimRequest) -> Reply | None:
        email, key = _basic_auth(request.headers.get("Authorization", ""))
        expected_key = sim.apikey or sim.password
        if sim.login is None and expected_key is None:
            ok = bool(email and key)
        else:
            ok = email == sim.login and key == expected_key
        if ok:
            return None
        return json_reply({"success": False, "data": None, "message": "Your credentials are incorrect"}, 401)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        return json_reply({"success": False, "data": None, "message": str(code)}, 400)

    def send(self, sim: Simulator, request: SimRequest) -> Reply:
        number = _digits(request.params.get("number", ""))
        text = request.params.get("text")
        if not 10 <= len(number) <= 15 or not text:
            return json_reply({"success": False, "data": None, "message": "Validation error."}, 400)
        accepted = sim.accept(
            self.kind,
            [(number, None)],
            text,
            request.params.get("sign"),
            segments(text),
            provider_id=str,
            report_url=request.params.get("callbackUrl") or None,
        )
        if accepted is None:
            return json_reply({"success": False, "data": None, "message": "Insufficient funds"}, 400)
        # A fresh message is always "queue" in the send answer, however short the delivery delay.
        data = self._data(accepted[0][0], time.time(), fresh=True)
        return json_reply({"success": True, "data": data, "message": None})

    def status(self, sim: Simulator, request: SimRequest) -> Reply:
        message = sim.find(request.params.get("id", "").strip())
        if message is None:
            return json_reply({"success": False, "data": None, "message": "Sms not found"}, 404)
        return json_reply({"success": True, "data": self._data(message, time.time()), "message": None})

    def _data(self, message: SimMessage, now: float, *, fresh: bool = False) -> dict[str, Any]:
        status, extended = {"pending": self.pending, "delivered": self.delivered}.get(
            message.state(now), self.undelivered
        )
        if fresh:
            status, extended = self.queued
        return {
            "id": int(message.provider_id),
            "from": message.sender,
            "number": message.phone,
            "text": message.text,
            "status": status,
            "extendStatus": extended,
            "channel": "DIRECT",
            "cost": round(message.parts * 1.5, 2),
            "dateCreate": int(message.received_at),
            "dateSend": int(message.received_at),
        }

    def balance(self, sim: Simulator, request: SimRequest) -> Reply:
        return json_reply(
            {"success": True, "data": {"balance": round(sim.balance_left(), 2)}, "message": None}
        )

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        status, extended = self.undelivered if message.undelivered else self.delivered
        body = {"id": int(message.provider_id), "status": status, "extendStatus": extended}
        return json.dumps(body).encode("utf-8"), "application/json"


DIALECTS: dict[str, type[Dialect]] = {d.kind: d for d in (SmscDialect, SmsRuDialect, SmsAeroDialect)}


# --- the simulator --------------------------------------------------------------------------------------


class Simulator:
    def __init__(
        self,
        kind: str = "smsc",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        login: str | None = None,
        password: str | None = None,
        apikey: str | None = None,
        behaviour: Behaviour | Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in DIALECTS:
            raise ValueError(f"unknown simulator kind {kind!r}; one of {', '.join(sorted(DIALECTS))}")
        self.kind = kind
        self.dialect = SmsRuDialect(apikey or password) if kind == "smsru" else DIALECTS[kind]()
        self.login, self.password, self.apikey = login, password, apikey
        if isinstance(behaviour, Mapping):
            behaviour = Behaviour().changed(behaviour)
        self._initial = behaviour or Behaviour()
        self._address = (host, port)
        self._lock = threading.Lock()
        self._seed = seed
        self._reset_state()
        self._reporter = _Reporter(self)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _reset_state(self) -> None:
        self.behaviour = replace(self._initial)
        self._rng = random.Random(self._seed)
        self._messages: list[SimMessage] = []
        self._by_provider_id: dict[str, SimMessage] = {}
        self._by_id_phone: dict[tuple[str, str], SimMessage] = {}
        self._counter = itertools.count(1)
        self._spent = 0.0
        self._requests: Counter[str] = Counter()
        self._rejected_sends = 0
        self.reports_pushed = 0
        self.report_failures = 0

    # -- lifecycle --

    def start(self) -> Simulator:
        self._stopping.clear()
        self._httpd = _HTTPServer(self._address, _Handler)
        self._httpd.sim = self
        # A short poll interval keeps stop() quick; the cost is a few idle wake-ups a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=f"simulator-{self.kind}", daemon=True
        )
        self._thread.start()
        self._reporter.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes answers sleeping in delay_seconds
        self._reporter.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block while the server runs (until stop() from elsewhere, or a signal); the caller stops it."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection and control (the same as the /_sim/ endpoints) --

    def received(self) -> list[SimMessage]:
        with self._lock:
            return list(self._messages)

    def set_behaviour(self, **changes: Any) -> Behaviour:
        with self._lock:
            self.behaviour = self.behaviour.changed(changes)
            return self.behaviour

    def reset(self) -> None:
        self._reporter.clear()
        with self._lock:
            self._reset_state()

    def stats(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            messages = list(self._messages)
            requests_by_op = dict(self._requests)
            rejected = self._rejected_sends
        refs = Counter(m.ref for m in messages if m.ref is not None)
        pairs = Counter((m.phone, m.text) for m in messages)
        states = Counter(m.state(now) for m in messages)
        return {
            "kind": self.kind,
            "requests": requests_by_op,
            "messages": len(messages),
            "rejected_sends": rejected,
            "unique_refs": len(refs),
            "duplicate_refs": sum(1 for n in refs.values() if n > 1),
            "duplicates": dict(itertools.islice(((r, n) for r, n in refs.items() if n > 1), MAX_LISTED)),
            "duplicate_texts": sum(n - 1 for n in pairs.values() if n > 1),
            "pending": states["pending"],
            "delivered": states["delivered"],
            "undelivered": states["undelivered"],
            "reports_pushed": self.reports_pushed,
            "report_failures": self.report_failures,
            "balance": round(self.balance_left(), 2),
        }

    # -- used by dialects --

    def accept(
        self,
        kind: str,
        recipients: Sequence[tuple[str, str | None]],
        text: str,
        sender: str | None,
        parts: int,
        *,
        provider_id: Callable[[int], str],
        report_url: str | None = None,
    ) -> tuple[list[SimMessage], float] | None:
        """Record one message per (phone, ref); None when the money does not cover it."""
        now = time.time()
        accepted: list[SimMessage] = []
        with self._lock:
            behaviour = self.behaviour
            cost = behaviour.price * parts * len(recipients)
            if self._spent + cost > behaviour.balance + 1e-9:
                return None
            self._spent += cost
            for phone, ref in recipients:
                message = SimMessage(
                    kind=kind,
                    ref=ref,
                    phone=phone,
                    text=text,
                    sender=sender,
                    received_at=now,
                    provider_id=provider_id(next(self._counter)),
                    undelivered=self._rng.random() < behaviour.undelivered_share,
                    deliver_at=now + behaviour.delivery_delay,
                    report_url=report_url or behaviour.report_url,
                    parts=parts,
                )
                self._messages.append(message)
                self._by_provider_id[message.provider_id] = message
                self._by_id_phone[(message.provider_id, phone)] = message
                accepted.append(message)
            balance = behaviour.balance - self._spent
        for message in accepted:
            if message.report_url:
                self._reporter.schedule(message)
        return accepted, balance

    def find(self, provider_id: str, phone: str | None = None) -> SimMessage | None:
        """The latest message with this provider id (and phone digits, for SMSC's id + phone pairs)."""
        with self._lock:
            if phone is not None:
                return self._by_id_phone.get((provider_id, phone))
            return self._by_provider_id.get(provider_id)

    def balance_left(self) -> float:
        return self.behaviour.balance - self._spent

    # -- request handling --

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, _, query = target.partition("?")
        if path.startswith("/_sim/"):
            return self._control(method, path, query, body)
        operation = self.dialect.routes.get(path)
        if operation is None:
            return text_reply("not found", 404)
        request = self.dialect.parse(method, path, query, headers, body)
        with self._lock:
            self._requests[operation] += 1
            scripted = self._scripted_trouble(operation)
        delay, http_status, error_code = scripted
        reply = self._reply(operation, request, http_status, error_code)
        if delay:
            # Taken at once, answered late: the case where a client times out on a message that was sent.
            self._stopping.wait(delay)
        return reply

    def _reply(
        self, operation: str, request: SimRequest, http_status: int | None, error_code: int | str | None
    ) -> Reply:
        if http_status is not None:
            phrase = HTTPStatus(http_status).phrase if http_status in _STATUSES else "error"
            return text_reply(phrase, http_status)
        refusal = self.dialect.authenticate(self, request)
        if refusal is None and error_code is not None:
            refusal = self.dialect.error_reply(operation, error_code, request)
        if refusal is not None:
            if operation == "send":
                with self._lock:
                    self._rejected_sends += 1
            return refusal
        handler: Callable[[Simulator, SimRequest], Reply] = getattr(self.dialect, operation)
        return handler(self, request)

    def _scripted_trouble(self, operation: str) -> tuple[float, int | None, int | str | None]:
        """The delay, HTTP failure and provider error the behaviour asks for now (counting down
        `*_times`). Called with the lock held."""
        behaviour = self.behaviour
        if operation not in behaviour.affects:
            return 0.0, None, None
        delay = self._take("delay_seconds", "delay_times", 0.0)
        http_status = self._take("fail_http", "fail_http_times", None)
        error_code = self._take("error_code", "error_code_times", None) if http_status is None else None
        return delay, http_status, error_code

    def _take(self, name: str, times_name: str, off: Any) -> Any:
        value = getattr(self.behaviour, name)
        if value in (None, 0, 0.0):
            return value
        times = getattr(self.behaviour, times_name)
        if times is not None:
            times -= 1
            changes = {times_name: times} if times > 0 else {times_name: None, name: off}
            self.behaviour = replace(self.behaviour, **changes)
        return value

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        try:
            if path == "/_sim/messages" and method == "GET":
                return json_reply(self._messages_json(parse_qs(query)))
            if path == "/_sim/stats" and method == "GET":
                return json_reply(self.stats())
            if path == "/_sim/reset" and method == "POST":
                self.reset()
                return json_reply({"ok": True})
            if path == "/_sim/behaviour" and method == "GET":
                return json_reply(self.behaviour.as_json())
            if path == "/_sim/behaviour" and method == "POST":
                changes = json.loads(body.decode("utf-8") or "{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                return json_reply(self.set_behaviour(**changes).as_json())
        except ValueError as exc:
            return json_reply({"error": str(exc)}, 400)
        return json_reply({"error": "not found"}, 404)

    def _messages_json(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        now = time.time()
        ref = filters.get("ref", [None])[0]
        phone = filters.get("phone", [None])[0]
        return [
            m.as_json(now)
            for m in self.received()
            if (ref is None or m.ref == ref) and (phone is None or m.phone == _digits(phone))
        ]


_STATUSES = {s.value for s in HTTPStatus}


# --- delivery-report pushes -----------------------------------------------------------------------------


class _Reporter:
    """Pushes delivery reports when messages become final, from one background thread."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._queue: list[tuple[float, int, SimMessage]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="simulator-reports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=REPORT_TIMEOUT + 1)
        self._session.close()

    def schedule(self, message: SimMessage) -> None:
        with self._wake:
            heapq.heappush(self._queue, (message.deliver_at, next(self._order), message))
            self._wake.notify()

    def clear(self) -> None:
        with self._wake:
            self._queue.clear()

    def _run(self) -> None:
        while True:
            message = self._next_due()
            if message is None:
                return
            self._push(message)

    def _next_due(self) -> SimMessage | None:
        with self._wake:
            while not self._stopping:
                if self._queue and self._queue[0][0] <= time.time():
                    return heapq.heappop(self._queue)[2]
                timeout = self._queue[0][0] - time.time() if self._queue else None
                self._wake.wait(timeout)
            return None

    def _push(self, message: SimMessage) -> None:
        assert message.report_url is not None
        body, content_type = self._sim.dialect.report(message)
        try:
            response = self._session.post(
                message.report_url, data=body, headers={"Content-Type": content_type}, timeout=REPORT_TIMEOUT
            )
            ok = response.status_code < 300
        except requests.RequestException as exc:
            log.info("simulator report push failed: %s", type(exc).__name__)
            ok = False
        with self._sim._lock:
            if ok:
                self._sim.reports_pushed += 1
            else:
                self._sim.report_failures += 1


# --- HTTP plumbing --------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # benchmarks open many keep-alive connections at once
    sim: Simulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, so a stopped simulator answers nobody."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("simulator connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    disable_nagle_algorithm = True  # the answer goes in one write; do not let it wait for an ACK
    server: _HTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.sim.handle(self.command, self.path, self.headers, body)
        except Exception:
            log.exception("simulator failed on %s %s", self.command, self.path.partition("?")[0])
            reply = text_reply("simulator error", 500)
        phrase = HTTPStatus(reply.status).phrase if reply.status in _STATUSES else "Status"
        head = (
            f"HTTP/1.1 {reply.status} {phrase}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            + ("Connection: close\r\n" if self.close_connection else "")
            + "\r\n"
        )
        self.wfile.write(head.encode("latin-1") + reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # one log line per request would halve throughput
        pass


# --- small helpers --------------------------------------------------------------------------------------

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def segments(text: str) -> int:
    """How many SMS parts `text` takes (GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units, single, multi = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _valid_smsc_id(ref: str) -> bool:
    return ref.isdigit() and 0 <= int(ref) <= SMSC_MAX_ID


def _password_matches(given: str, expected: str | None) -> bool:
    """SMSC takes the password or its lower-case MD5."""
    if expected is None:
        return True
    return given == expected or given == hashlib.md5(expected.encode("utf-8")).hexdigest()


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None, None
    try:
        user, _, secret = base64.b64decode(token).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, secret


def _money(amount: float) -> str:
    return f"{amount:.2f}"


def _form_body(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields, encoding="utf-8").encode("ascii")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- command line ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsqueue simulator",
        description="A local SMS provider that speaks a real provider's wire format.",
    )
    parser.add_argument("--kind", choices=sorted(DIALECTS), default="smsc")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--login", help="accept only this login (SMSC) or e-mail (SMS Aero)")
    parser.add_argument("--password", help="accept only this password (SMSC; SMS.ru api_id; SMS Aero key)")
    parser.add_argument(
        "--apikey", help="accept only this API key (SMSC apikey, SMS.ru api_id, SMS Aero key)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for which messages end undelivered")
    defaults = Behaviour()
    parser.add_argument("--delivery-delay", type=float, default=defaults.delivery_delay, metavar="SECONDS")
    parser.add_argument("--undelivered-share", type=float, default=defaults.undelivered_share, metavar="0..1")
    parser.add_argument("--fail-http", type=int, metavar="STATUS", help="answer this HTTP status")
    parser.add_argument("--fail-http-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument("--error-code", metavar="CODE", help="answer this provider error code")
    parser.add_argument("--error-code-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument("--delay-seconds", type=float, default=0.0, help="answer this many seconds late")
    parser.add_argument("--delay-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument(
        "--affects", nargs="+", choices=OPERATIONS, default=list(defaults.affects), help="operations hit"
    )
    parser.add_argument("--report-url", help="push delivery reports to this URL")
    parser.add_argument("--balance", type=float, default=defaults.balance)
    parser.add_argument("--price", type=float, default=defaults.price)
    return parser


def behaviour_from_args(args: argparse.Namespace) -> Behaviour:
    names = {f.name for f in fields(Behaviour)}
    return Behaviour().changed({name: getattr(args, name) for name in names})


def serve(
    kind: str = "smsc",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    behaviour: Behaviour | Mapping[str, Any] | None = None,
    login: str | None = None,
    password: str | None = None,
    apikey: str | None = None,
    seed: int = 0,
) -> None:
    """Run a simulator in the foreground until SIGINT or SIGTERM."""
    sim = Simulator(
        kind, host, port, login=login, password=password, apikey=apikey, behaviour=behaviour, seed=seed
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:  # everything after the handler is installed, so a signal at any point stops cleanly
        sim.start()
        print(f"smsqueue simulator ({kind}) listening on {sim.url}", flush=True)
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        behaviour = behaviour_from_args(args)
    except ValueError as exc:
        print(f"smsqueue simulator: {exc}", file=sys.stderr)
        return 2
    serve(
        args.kind,
        args.host,
        args.port,
        behaviour=behaviour,
        login=args.login,
        password=args.password,
        apikey=args.apikey,
        seed=args.seed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
