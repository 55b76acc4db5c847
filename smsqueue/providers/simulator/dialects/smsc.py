"""SMSC.ru: /sys/send.php, /sys/status.php, /sys/balance.php with fmt=3 (JSON answers); login + psw
(or its MD5) or an apikey; reports pushed as a form."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from smsqueue.providers.simulator.dialects.base import Dialect
from smsqueue.providers.simulator.state import SimMessage, SimState
from smsqueue.providers.simulator.wire import (
    Reply,
    SimRequest,
    as_int,
    digits,
    first_values,
    form_body,
    json_reply,
    money,
)
from smsqueue.segments import count_segments

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

    def parse(self, query: str, headers: Mapping[str, str], body: bytes) -> SimRequest:
        request = super().parse(query, headers, body)
        # SMSC decodes by the `charset` parameter and defaults to windows-1251: a client that forgets
        # charset=utf-8 gets its Cyrillic garbled here as it would there.
        charset = SMSC_CHARSETS.get(request.params.get("charset", "windows-1251").lower(), "cp1251")
        if charset != "utf-8":
            raw = "&".join(part for part in (query, body.decode("latin-1")) if part)
            request.params = first_values(raw, charset)
        return request

    def authenticate(self, request: SimRequest) -> Reply | None:
        params, accepted = request.params, self.credentials
        if accepted.apikey and params.get("apikey") == accepted.apikey:
            return None
        login, psw = params.get("login"), params.get("psw")
        if not accepted.configured:
            ok = bool(params.get("apikey")) or bool(login and psw)
        else:
            ok = login == accepted.login and psw is not None and _password_matches(psw, accepted.password)
        return None if ok else self.error_reply("auth", 2, request)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        answer: dict[str, Any] = {"error": SMSC_ERRORS.get(as_int(code) or 0, "error"), "error_code": code}
        ref = request.params.get("id")
        if operation == "send" and ref and ref.isdigit() and int(ref) > 0:
            answer["id"] = int(ref)
        return json_reply(answer)

    def send(self, state: SimState, request: SimRequest) -> Reply:
        params = request.params
        phones = [p.strip() for p in params.get("phones", "").replace(";", ",").split(",") if p.strip()]
        text = params.get("mes")
        ref = params.get("id", "")
        if not phones or text is None or (ref and not _valid_smsc_id(ref)):
            return self.error_reply("send", 1, request)
        numbers = [digits(p) for p in phones]
        if any(not 10 <= len(n) <= 15 for n in numbers):
            return self.error_reply("send", 7, request)
        parts = count_segments(text).segments
        if params.get("cost") == "1":  # "how much would it cost", nothing sent
            return json_reply({"cost": money(state.behaviour.price * parts * len(numbers)), "cnt": parts})
        our_ref = ref if ref and ref != "0" else None
        accepted = state.accept(
            self.kind,
            [(n, our_ref) for n in numbers],
            text,
            params.get("sender"),
            parts,
            provider_id=lambda n: our_ref or str(n),
        )
        if accepted is None:
            return self.error_reply("send", 3, request)
        messages, balance = accepted
        answer: dict[str, Any] = {"id": int(messages[0].provider_id), "cnt": parts * len(messages)}
        if params.get("cost") in ("2", "3"):
            answer["cost"] = money(state.behaviour.price * parts * len(messages))
            answer["balance"] = money(balance)
        return json_reply(answer)

    def status(self, state: SimState, request: SimRequest) -> Reply:
        ids_param, phones_param = request.params.get("id", ""), request.params.get("phone", "")
        listed = "," in ids_param or "," in phones_param
        ids = [i for i in ids_param.split(",") if i.strip()]
        phones = [p for p in phones_param.split(",") if p.strip()]
        if not ids or len(ids) != len(phones):
            return self.error_reply("status", 1, request)
        now = time.time()
        items = [
            self._status_item(state.find(i.strip(), digits(p)), i.strip(), p, now)
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
        item["phone"] = digits(phone)
        return item

    def _code(self, state: str) -> int:
        return {"pending": self.pending_status, "delivered": self.delivered_status}.get(
            state, self.undelivered_status
        )

    def balance(self, state: SimState, request: SimRequest) -> Reply:
        answer: dict[str, Any] = {"balance": money(state.balance_left())}
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
        return form_body(form), "application/x-www-form-urlencoded"


def _valid_smsc_id(ref: str) -> bool:
    return ref.isdigit() and 0 <= int(ref) <= SMSC_MAX_ID


def _password_matches(given: str, expected: str | None) -> bool:
    """SMSC takes the password or its lower-case MD5."""
    if expected is None:
        return True
    return given == expected or given == hashlib.md5(expected.encode("utf-8")).hexdigest()
