"""SMS Aero v2: /v2/sms/send, /v2/sms/status, /v2/balance; HTTP Basic (e-mail, API key); JSON or form
bodies; reports pushed as JSON to the send's `callbackUrl` (or the behaviour's report URL)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from smsqueue.providers.simulator.dialects.base import Dialect
from smsqueue.providers.simulator.state import SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, digits, json_reply
from smsqueue.segments import count_segments


class SmsAeroDialect(Dialect):
    kind = "smsaero"
    routes = {"/v2/sms/send": "send", "/v2/sms/status": "status", "/v2/balance": "balance"}
    # (status, extendStatus) as SMS Aero spells them
    queued = (0, "queue")
    pending = (3, "smsc submit")
    delivered = (1, "delivery success")
    undelivered = (2, "delivery failure")

    def parse(self, query: str, headers: Mapping[str, str], body: bytes) -> SimRequest:
        request = super().parse(query, headers, body)
        if body and "json" in headers.get("Content-Type", ""):
            try:
                request.json = json.loads(body.decode("utf-8"))
            except ValueError:
                request.json = None
            if isinstance(request.json, dict):
                request.params.update({k: str(v) for k, v in request.json.items() if v is not None})
        return request

    def authenticate(self, request: SimRequest) -> Reply | None:
        email, key = _basic_auth(request.headers.get("Authorization", ""))
        expected_key = self.credentials.apikey or self.credentials.password
        if self.credentials.login is None and expected_key is None:
            ok = bool(email and key)
        else:
            ok = email == self.credentials.login and key == expected_key
        if ok:
            return None
        return json_reply({"success": False, "data": None, "message": "Your credentials are incorrect"}, 401)

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        return json_reply({"success": False, "data": None, "message": str(code)}, 400)

    def send(self, state: SimState, request: SimRequest) -> Reply:
        number = digits(request.params.get("number", ""))
        text = request.params.get("text")
        if not 10 <= len(number) <= 15 or not text:
            return json_reply({"success": False, "data": None, "message": "Validation error."}, 400)
        accepted = state.accept(
            self.kind,
            [(number, None)],
            text,
            request.params.get("sign"),
            count_segments(text).segments,
            provider_id=str,
            report_url=request.params.get("callbackUrl") or None,
        )
        if accepted is None:
            return json_reply({"success": False, "data": None, "message": "Insufficient funds"}, 400)
        # A fresh message is always "queue" in the send answer, however short the delivery delay.
        data = self._data(accepted[0][0], time.time(), fresh=True)
        return json_reply({"success": True, "data": data, "message": None})

    def status(self, state: SimState, request: SimRequest) -> Reply:
        message = state.find(request.params.get("id", "").strip())
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

    def balance(self, state: SimState, request: SimRequest) -> Reply:
        return json_reply(
            {"success": True, "data": {"balance": round(state.balance_left(), 2)}, "message": None}
        )

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        status, extended = self.undelivered if message.undelivered else self.delivered
        body = {"id": int(message.provider_id), "status": status, "extendStatus": extended}
        return json.dumps(body).encode("utf-8"), "application/json"


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None, None
    try:
        user, _, secret = base64.b64decode(token).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, secret
