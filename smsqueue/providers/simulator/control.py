"""The simulator's own control and inspection endpoints (JSON), beside the provider's paths:

GET  /_sim/messages      every accepted send (filters: ?ref=..&phone=..)
GET  /_sim/stats         request and message counts, duplicates by our id, report pushes
POST /_sim/reset         forget messages and counts; restore the behaviour given at start
GET  /_sim/behaviour     the current behaviour
POST /_sim/behaviour     change some of it: {"fail_http": 500, "fail_http_times": 1}
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs

from smsqueue.providers.simulator.behaviour import Behaviour
from smsqueue.providers.simulator.state import SimMessage
from smsqueue.providers.simulator.wire import Reply, digits, json_reply

CONTROL_PREFIX = "/_sim/"


class Controlled(Protocol):
    """What the endpoints need of a simulator (the same calls an in-process test makes)."""

    @property
    def behaviour(self) -> Behaviour: ...

    def received(self) -> list[SimMessage]: ...

    def stats(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...

    def set_behaviour(self, **changes: Any) -> Behaviour: ...


def control_reply(sim: Controlled, method: str, path: str, query: str, body: bytes) -> Reply:
    try:
        if path == "/_sim/messages" and method == "GET":
            return json_reply(_messages_json(sim, parse_qs(query)))
        if path == "/_sim/stats" and method == "GET":
            return json_reply(sim.stats())
        if path == "/_sim/reset" and method == "POST":
            sim.reset()
            return json_reply({"ok": True})
        if path == "/_sim/behaviour" and method == "GET":
            return json_reply(sim.behaviour.as_json())
        if path == "/_sim/behaviour" and method == "POST":
            changes = json.loads(body.decode("utf-8") or "{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            return json_reply(sim.set_behaviour(**changes).as_json())
    except ValueError as exc:
        return json_reply({"error": str(exc)}, 400)
    return json_reply({"error": "not found"}, 404)


def _messages_json(sim: Controlled, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    now = time.time()
    ref = filters.get("ref", [None])[0]
    phone = filters.get("phone", [None])[0]
    return [
        m.as_json(now)
        for m in sim.received()
        if (ref is None or m.ref == ref) and (phone is None or m.phone == digits(phone))
    ]
