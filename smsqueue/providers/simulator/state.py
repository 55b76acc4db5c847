"""What the simulator holds between requests: the messages it took, when each becomes final, the money
spent, request counts and the behaviour in force (with its `*_times` countdowns). One lock guards it
all, taken briefly once or twice a request."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from smsqueue.providers.simulator.behaviour import Behaviour

MAX_LISTED = 1000  # duplicates listed by stats(); `duplicate_refs` counts them all


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


class Recipient(NamedTuple):
    """One message of a send request: where it goes, our id for it, its text, parts and sender."""

    phone: str
    ref: str | None
    text: str
    parts: int
    sender: str | None = None


class Trouble(NamedTuple):
    """What the behaviour scripts for one request: answer late, with an HTTP failure, or a provider error."""

    delay: float
    http_status: int | None
    error_code: int | str | None


class SimState:
    def __init__(
        self, behaviour: Behaviour, seed: int, schedule_report: Callable[[SimMessage], None]
    ) -> None:
        self._initial = behaviour
        self._seed = seed
        self._schedule_report = schedule_report
        self._lock = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        self.behaviour = replace(self._initial)
        self._rng = random.Random(self._seed)
        self._messages: list[SimMessage] = []
        self._by_provider_id: dict[str, SimMessage] = {}
        self._by_id_phone: dict[tuple[str, str], SimMessage] = {}
        self._by_ref: dict[str, SimMessage] = {}
        self._counter = itertools.count(1)
        self._spent = 0.0
        self._requests: Counter[str] = Counter()
        self._reserve_requests: Counter[str] = Counter()
        self._rejected_sends = 0

    def reset(self) -> None:
        """Forget messages and counts; restore the behaviour given at start."""
        with self._lock:
            self._forget()

    def set_behaviour(self, **changes: Any) -> Behaviour:
        with self._lock:
            self.behaviour = self.behaviour.changed(changes)
            return self.behaviour

    def received(self) -> list[SimMessage]:
        with self._lock:
            return list(self._messages)

    # -- per request --

    def count_request(self, operation: str, endpoint: str = "main") -> Trouble:
        """Count one request and take the trouble the behaviour scripts for it now."""
        with self._lock:
            self._requests[operation] += 1
            if endpoint == "reserve":
                self._reserve_requests[operation] += 1
            if operation not in self.behaviour.affects or endpoint not in self.behaviour.endpoints:
                return Trouble(0.0, None, None)
            delay = self._take("delay_seconds", "delay_times", 0.0)
            http_status = self._take("fail_http", "fail_http_times", None)
            error_code = self._take("error_code", "error_code_times", None) if http_status is None else None
            return Trouble(delay, http_status, error_code)

    def _take(self, name: str, times_name: str, off: Any) -> Any:
        """The value of `name`, counting down `times_name` and switching it `off` when used up."""
        value = getattr(self.behaviour, name)
        if value in (None, 0, 0.0):
            return value
        times = getattr(self.behaviour, times_name)
        if times is not None:
            times -= 1
            changes = {times_name: times} if times > 0 else {times_name: None, name: off}
            self.behaviour = replace(self.behaviour, **changes)
        return value

    def count_rejected_send(self) -> None:
        with self._lock:
            self._rejected_sends += 1

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
        """Record one message per (phone, ref) and the balance left; None when the money does not cover it."""
        items = [Recipient(phone, ref, text, parts, sender) for phone, ref in recipients]
        return self.accept_each(kind, items, provider_id=provider_id, report_url=report_url)

    def accept_each(
        self,
        kind: str,
        recipients: Sequence[Recipient],
        *,
        provider_id: Callable[[int], str],
        report_url: str | None = None,
    ) -> tuple[list[SimMessage], float] | None:
        """`accept` for messages with texts and senders of their own: all, or none when the money is short."""
        now = time.time()
        accepted: list[SimMessage] = []
        with self._lock:
            behaviour = self.behaviour
            cost = behaviour.price * sum(r.parts for r in recipients)
            if self._spent + cost > behaviour.balance + 1e-9:
                return None
            self._spent += cost
            for recipient in recipients:
                message = SimMessage(
                    kind=kind,
                    ref=recipient.ref,
                    phone=recipient.phone,
                    text=recipient.text,
                    sender=recipient.sender,
                    received_at=now,
                    provider_id=provider_id(next(self._counter)),
                    undelivered=self._rng.random() < behaviour.undelivered_share,
                    deliver_at=now + behaviour.delivery_delay,
                    report_url=report_url or behaviour.report_url,
                    parts=recipient.parts,
                )
                self._messages.append(message)
                self._by_provider_id[message.provider_id] = message
                self._by_id_phone[(message.provider_id, message.phone)] = message
                if message.ref is not None:
                    self._by_ref[message.ref] = message
                accepted.append(message)
            balance = behaviour.balance - self._spent
        for message in accepted:
            if message.report_url:
                self._schedule_report(message)
        return accepted, balance

    def find(self, provider_id: str, phone: str | None = None) -> SimMessage | None:
        """The latest message with this provider id (and phone digits, for SMSC's id + phone pairs)."""
        with self._lock:
            if phone is not None:
                return self._by_id_phone.get((provider_id, phone))
            return self._by_provider_id.get(provider_id)

    def find_ref(self, ref: str) -> SimMessage | None:
        """The latest message sent with our id `ref` (IQSMS `clientId`)."""
        with self._lock:
            return self._by_ref.get(ref)

    def is_bad_number(self, phone: str) -> bool:
        """Not a number the provider takes: not 10-15 digits, or one the behaviour calls bad."""
        return not (10 <= len(phone) <= 15 and phone.isdigit()) or phone in self.behaviour.bad_numbers

    def balance_left(self) -> float:
        return self.behaviour.balance - self._spent

    def stats(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            messages = list(self._messages)
            requests_by_op = dict(self._requests)
            reserve_requests = dict(self._reserve_requests)
            rejected = self._rejected_sends
        refs = Counter(m.ref for m in messages if m.ref is not None)
        pairs = Counter((m.phone, m.text) for m in messages)
        states = Counter(m.state(now) for m in messages)
        return {
            "requests": requests_by_op,
            "reserve_requests": reserve_requests,
            "messages": len(messages),
            "rejected_sends": rejected,
            "unique_refs": len(refs),
            "duplicate_refs": sum(1 for n in refs.values() if n > 1),
            "duplicates": dict(itertools.islice(((r, n) for r, n in refs.items() if n > 1), MAX_LISTED)),
            "duplicate_texts": sum(n - 1 for n in pairs.values() if n > 1),
            "pending": states["pending"],
            "delivered": states["delivered"],
            "undelivered": states["undelivered"],
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
