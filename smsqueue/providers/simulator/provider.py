"""The simulated provider: one dialect over the shared state, served over HTTP, with delivery reports
pushed in the background and the `/_sim/` endpoints beside the provider's own paths."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from smsqueue.providers.simulator.behaviour import Behaviour
from smsqueue.providers.simulator.control import CONTROL_PREFIX, control_reply
from smsqueue.providers.simulator.dialects import Credentials, dialect_for
from smsqueue.providers.simulator.report_pusher import ReportPusher
from smsqueue.providers.simulator.server import SimHTTPServer
from smsqueue.providers.simulator.state import SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, http_phrase, text_reply

RESERVE_PREFIX = "/reserve"  # a dialect with `has_reserve` answers its paths under it too


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
        self.kind = kind
        self.dialect = dialect_for(kind, Credentials(login, password, apikey))
        if isinstance(behaviour, Mapping):
            behaviour = Behaviour().changed(behaviour)
        self._reports = ReportPusher(self.dialect.reports)
        schedule = self._reports.schedule if self.dialect.pushes_reports else _no_report
        self._state = SimState(behaviour or Behaviour(), seed, schedule_report=schedule)
        self._address = (host, port)
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle --

    def start(self) -> Simulator:
        self._stopping.clear()
        self._httpd = SimHTTPServer(self._address, self.handle)
        # A short poll interval keeps stop() quick; the cost is a few idle wake-ups a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=f"simulator-{self.kind}", daemon=True
        )
        self._thread.start()
        self._reports.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes answers sleeping in delay_seconds
        self._reports.stop()
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

    @property
    def behaviour(self) -> Behaviour:
        return self._state.behaviour

    def received(self) -> list[SimMessage]:
        return self._state.received()

    def set_behaviour(self, **changes: Any) -> Behaviour:
        return self._state.set_behaviour(**changes)

    def reset(self) -> None:
        self._reports.clear()
        self._state.reset()
        self.dialect.reset()

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **self._state.stats(),
            **self._reports.counts(),
            "balance": round(self._state.balance_left(), 2),
        }

    # -- request handling --

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, _, query = target.partition("?")
        if path.startswith(CONTROL_PREFIX):
            return control_reply(self, method, path, query, body)
        endpoint = "main"
        if self.dialect.has_reserve and path.startswith(RESERVE_PREFIX + "/"):
            endpoint, path = "reserve", path[len(RESERVE_PREFIX) :]
        if path not in self.dialect.routes:
            return text_reply("not found", 404)
        request = self.dialect.parse(query, headers, body)
        request.path = path
        operation = self.dialect.operation(request)
        if operation is None:
            return text_reply("not found", 404)
        trouble = self._state.count_request(operation, endpoint)
        reply = self._reply(operation, request, trouble.http_status, trouble.error_code)
        if trouble.delay:
            # Taken at once, answered late: the case where a client times out on a message that was sent.
            self._stopping.wait(trouble.delay)
        return reply

    def _reply(
        self, operation: str, request: SimRequest, http_status: int | None, error_code: int | str | None
    ) -> Reply:
        if http_status is not None:
            return text_reply(http_phrase(http_status, "error"), http_status)
        refusal = self.dialect.authenticate(request)
        if refusal is None and error_code is not None:
            refusal = self.dialect.error_reply(operation, error_code, request)
        if refusal is not None:
            if operation == "send":
                self._state.count_rejected_send()
            return refusal
        if operation == "send":
            return self.dialect.send(self._state, request)
        if operation == "status":
            return self.dialect.status(self._state, request)
        return self.dialect.balance(self._state, request)


def _no_report(message: SimMessage) -> None:
    """The schedule of a dialect that pushes no reports (IQSMS: its statuses wait in a queue)."""
