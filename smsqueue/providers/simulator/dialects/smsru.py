"""SMS.ru: /sms/send, /sms/status, /my/balance with json=1; an api_id; reports pushed as a form of
`data[N]` lines, signed with the api_id when it is known."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from smsqueue.providers.simulator.dialects.base import Credentials, Dialect
from smsqueue.providers.simulator.state import SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, as_int, digits, form_body, json_reply
from smsqueue.segments import count_segments

# Codes that refuse the whole request; any other send error is reported per number.
SMSRU_REQUEST_ERRORS = frozenset({200, 201, 210, 211, 220, 300, 301, 302, 500, 901})
SMSRU_TEXTS = {
    100: "Запрос выполнен",
    102: "Сообщение отправлено (в пути)",
    103: "Сообщение доставлено",
    106: "Сообщение не может быть доставлено: неудача на телефоне",
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",
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

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        # The one key SMS.ru knows an account by; it signs reports when configured.
        self.api_id = credentials.apikey or credentials.password

    def authenticate(self, request: SimRequest) -> Reply | None:
        api_id = request.params.get("api_id")
        ok = api_id == self.api_id if self.api_id else bool(api_id)
        return None if ok else self.error_reply("auth", 200, request)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        number = as_int(code)
        text = SMSRU_TEXTS.get(number or 0, "Ошибка")
        if operation == "send" and number not in SMSRU_REQUEST_ERRORS:
            sms = {
                digits(p): {"status": "ERROR", "status_code": code, "status_text": text}
                for p in request.params.get("to", "").split(",")
                if p.strip()
            }
            return json_reply({"status": "OK", "status_code": 100, "sms": sms, "balance": 0})
        return json_reply({"status": "ERROR", "status_code": code, "status_text": text})

    def send(self, state: SimState, request: SimRequest) -> Reply:
        numbers = [digits(p) for p in request.params.get("to", "").split(",") if p.strip()]
        text = request.params.get("msg")
        if not text:
            return self.error_reply("send", 203, request)
        good = [n for n in numbers if 10 <= len(n) <= 15]
        sms: dict[str, Any] = {
            n: {"status": "ERROR", "status_code": 202, "status_text": SMSRU_TEXTS[202]}
            for n in numbers
            if n not in good
        }
        balance = state.balance_left()
        if good:
            accepted = state.accept(
                self.kind,
                [(n, None) for n in good],
                text,
                request.params.get("from"),
                count_segments(text).segments,
                provider_id=lambda n: f"000000-{10000000 + n}",
            )
            if accepted is None:
                return self.error_reply("send", 201, request)
            messages, balance = accepted
            for message in messages:
                sms[message.phone] = {"status": "OK", "status_code": 100, "sms_id": message.provider_id}
        return json_reply({"status": "OK", "status_code": 100, "sms": sms, "balance": round(balance, 2)})

    def status(self, state: SimState, request: SimRequest) -> Reply:
        ids = [i.strip() for i in request.params.get("sms_id", "").split(",") if i.strip()]
        now = time.time()
        sms: dict[str, Any] = {}
        for sms_id in ids:
            message = state.find(sms_id)
            if message is None:
                sms[sms_id] = {"status": "ERROR", "status_code": -1, "status_text": SMSRU_TEXTS[-1]}
                continue
            code = self._code(message.state(now))
            sms[sms_id] = {"status": "OK", "status_code": code, "status_text": SMSRU_TEXTS[code]}
        return json_reply(
            {"status": "OK", "status_code": 100, "sms": sms, "balance": round(state.balance_left(), 2)}
        )

    def _code(self, state: str) -> int:
        return {"pending": self.pending_code, "delivered": self.delivered_code}.get(
            state, self.undelivered_code
        )

    def balance(self, state: SimState, request: SimRequest) -> Reply:
        return json_reply({"status": "OK", "status_code": 100, "balance": round(state.balance_left(), 2)})

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        code = self.undelivered_code if message.undelivered else self.delivered_code
        # SMS.ru posts data[N] = "sms_status\n<sms_id>\n<code>\n<unix time>" plus hash =
        # sha256(api_id + the data entries), and wants the plain text "100" back.
        line = f"sms_status\n{message.provider_id}\n{code}\n{int(message.deliver_at)}"
        form = {"data[0]": line}
        if self.api_id:
            form["hash"] = hashlib.sha256((self.api_id + line).encode("utf-8")).hexdigest()
        return form_body(form), "application/x-www-form-urlencoded"
