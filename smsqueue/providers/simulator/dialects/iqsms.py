"""IQSMS JSON API v2: /messages/v2/send.json, status.json, statusQueue.json, balance.json; `login` and
`password` in the JSON body; errors as `{"status": "error", "description": ...}` with HTTP 200, a
refused message as its error text in its `status`. Messages sent with a `statusQueueName` get their
final status put in that queue when they become final; statusQueue.json pops it (`queue is empty`
when drained). IQSMS pushes no reports: the queue takes their place. Status calls, queue pops
included, are the "status" operation for the behaviour."""

from __future__ import annotations

import heapq
import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from smsqueue.providers.simulator.dialects.base import Credentials, Dialect
from smsqueue.providers.simulator.state import Recipient, SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, digits, json_reply
from smsqueue.segments import count_segments

PREFIX = "/messages/v2"
QUEUE_PATH = f"{PREFIX}/statusQueue.json"
FIRST_ID = 3_000_000  # smscIds look like IQSMS's
MAX_MESSAGES = 200
DEFAULT_QUEUE_LIMIT, MAX_QUEUE_LIMIT = 5, 1000
MAX_SENDER = 11
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9]{3,16}$")


class IqsmsDialect(Dialect):
    kind = "iqsms"
    routes = {
        f"{PREFIX}/send.json": "send",
        f"{PREFIX}/status.json": "status",
        QUEUE_PATH: "status",
        f"{PREFIX}/balance.json": "balance",
    }
    pushes_reports = False
    pending_status = "smsc submit"
    delivered_status = "delivered"
    undelivered_status = "delivery error"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            # queue name -> a heap of (deliver_at, arrival, message): a status is in its queue once due
            self._queues: dict[str, list[tuple[float, int, SimMessage]]] = {}
            self._order = itertools.count()

    def parse(self, query: str, headers: Mapping[str, str], body: bytes) -> SimRequest:
        request = super().parse(query, headers, body)
        try:
            request.json = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            request.json = None
        return request

    def authenticate(self, request: SimRequest) -> Reply | None:
        body = _body(request)
        login, password = body.get("login"), body.get("password")
        accepted = self.credentials
        if not accepted.configured:
            ok = bool(login and password)
        else:
            ok = login == accepted.login and password == (accepted.password or accepted.apikey)
        return None if ok else _error("error authorization")

    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        return _error(str(code))

    # -- send --

    def send(self, state: SimState, request: SimRequest) -> Reply:
        body = _body(request)
        items = body.get("messages")
        if not isinstance(items, list) or not items:
            return _error("messages is empty")
        if len(items) > MAX_MESSAGES:
            return _error("too many messages")
        queue = body.get("statusQueueName")
        if queue is not None and not (isinstance(queue, str) and _QUEUE_NAME.match(queue)):
            return _error("invalid status queue name")
        answers: list[dict[str, Any] | None] = []
        recipients: list[Recipient] = []
        for item in items:
            item = item if isinstance(item, Mapping) else {}
            client_id = str(item.get("clientId") or "") or None
            problem, recipient = _check(state, item, client_id)
            answers.append({"clientId": client_id, "smscId": None, "status": problem} if problem else None)
            if recipient is not None:
                recipients.append(recipient)
        messages: list[SimMessage] = []
        if recipients:
            accepted = state.accept_each(self.kind, recipients, provider_id=lambda n: str(FIRST_ID + n))
            if accepted is None:
                return _error("not enough balance")
            messages = accepted[0]
        if queue is not None:
            self._enqueue(queue, messages)
        taken = iter(messages)
        out = [answer or _item(next(taken), "accepted") for answer in answers]
        return json_reply({"status": "ok", "description": None, "messages": out})

    def _enqueue(self, queue: str, messages: list[SimMessage]) -> None:
        with self._lock:
            heap = self._queues.setdefault(queue, [])
            for message in messages:
                heapq.heappush(heap, (message.deliver_at, next(self._order), message))

    # -- status and the status queue --

    def status(self, state: SimState, request: SimRequest) -> Reply:
        if request.path == QUEUE_PATH:
            return self._pop_queue(request)
        wanted = _body(request).get("messages")
        if not isinstance(wanted, list) or not wanted:
            return _error("messages is empty")
        now = time.time()
        out = []
        for item in wanted:
            item = item if isinstance(item, Mapping) else {}
            client_id, smsc_id = str(item.get("clientId") or ""), str(item.get("smscId") or "")
            message = state.find(smsc_id) if smsc_id else state.find_ref(client_id) if client_id else None
            if message is None:
                number = int(smsc_id) if smsc_id.isdigit() else None
                out.append({"clientId": client_id or None, "smscId": number, "status": "incorrect id"})
            else:
                out.append(_item(message, self._status_text(message.state(now))))
        return json_reply({"status": "ok", "description": None, "messages": out})

    def _pop_queue(self, request: SimRequest) -> Reply:
        body = _body(request)
        name = body.get("statusQueueName")
        if not (isinstance(name, str) and _QUEUE_NAME.match(name)):
            return _error("invalid status queue name")
        limit = body.get("statusQueueLimit", DEFAULT_QUEUE_LIMIT)
        limit = min(max(limit, 1), MAX_QUEUE_LIMIT) if isinstance(limit, int) else DEFAULT_QUEUE_LIMIT
        now = time.time()
        taken: list[SimMessage] = []
        with self._lock:
            heap = self._queues.get(name, [])
            while heap and heap[0][0] <= now and len(taken) < limit:
                taken.append(heapq.heappop(heap)[2])
        if not taken:
            return _error("queue is empty")
        out = [_item(m, self._status_text(m.state(now))) for m in taken]
        return json_reply({"status": "ok", "description": None, "messages": out})

    def _status_text(self, state: str) -> str:
        return {"pending": self.pending_status, "delivered": self.delivered_status}.get(
            state, self.undelivered_status
        )

    # -- balance --

    def balance(self, state: SimState, request: SimRequest) -> Reply:
        entry = {"type": "RUB", "balance": round(state.balance_left(), 2), "credit": 0}
        return json_reply({"status": "ok", "description": None, "balance": [entry]})


def _check(
    state: SimState, item: Mapping[str, Any], client_id: str | None
) -> tuple[str | None, Recipient | None]:
    """(the error text IQSMS puts in the message's status, or the message to take)."""
    phone, text, sender = digits(str(item.get("phone") or "")), item.get("text"), item.get("sender")
    if state.is_bad_number(phone):
        return "invalid mobile phone", None
    if not isinstance(text, str) or not text:
        return "text is empty", None
    if sender is not None and not (isinstance(sender, str) and 0 < len(sender) <= MAX_SENDER):
        return "sender address invalid", None
    return None, Recipient(phone, client_id, text, count_segments(text).segments, sender)


def _item(message: SimMessage, status: str) -> dict[str, Any]:
    return {"clientId": message.ref, "smscId": int(message.provider_id), "status": status}


def _body(request: SimRequest) -> Mapping[str, Any]:
    return request.json if isinstance(request.json, Mapping) else {}


def _error(description: str) -> Reply:
    return json_reply({"status": "error", "description": description})
