"""A tiny local HTTP server for provider-client tests: it records every request exactly and answers
with scripted responses.

Use it to assert what a client puts on the wire (method, path, query, headers, raw body bytes) and to
make it face any answer: a JSON body, an HTTP 500, a slow answer (for timeouts) or a dropped connection.

    from wire_server import WireServer

    with WireServer() as server:                       # binds 127.0.0.1 on a free port
        server.respond(json={"id": 1, "cnt": 1}, path="/sys/send.php")
        server.respond(status=500, times=1)            # any path, once, checked before older rules
        client = SmscClient(ProviderConfig("p", "smsc", {"base_url": server.url, ...}))
        ...
        request = server.last                          # or server.requests[i]
        assert request.method == "POST" and request.path == "/sys/send.php"
        assert request.form == {"mes": ["Привет"], ...}  # the body parsed as UTF-8 form fields

A rule may compute its answer from the request: `server.respond_with(lambda request: Answer(...))`
(return None to fall through to older rules).

Rules: `respond(...)` adds a rule; the newest matching rule answers (so a test can put a one-off
answer in front of a standing one); a rule with `times=N` is used N times and then dropped. With no
matching rule the server answers `default` (404 with an empty JSON object unless changed). A rule
matches on `path` (exact, without the query) and `method` when they are given.

Tests import it as `from wire_server import WireServer`: pytest puts `tests/` on sys.path for test
modules in a folder without `__init__.py`.
"""

from __future__ import annotations

import json as jsonlib
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Answer", "RecordedRequest", "WireServer"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as it arrived."""

    method: str
    target: str  # the request target as sent: path plus "?query", undecoded
    headers: dict[str, str]  # header names lower-cased; a repeated header keeps its last value
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def raw_query(self) -> str:
        return urlsplit(self.target).query

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True, encoding="utf-8", errors="strict")

    @property
    def form(self) -> dict[str, list[str]]:
        """The body as application/x-www-form-urlencoded fields, decoded as UTF-8 (strictly)."""
        return parse_qs(self.body.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict")

    def json(self) -> Any:
        return jsonlib.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Answer:
    """A scripted response. `delay` sleeps before answering; `drop` closes the connection unanswered."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class _Rule:
    answer: Answer
    path: str | None
    method: str | None
    times: int | None
    compute: Callable[[RecordedRequest], Answer | None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or self.path == path) and (self.method is None or self.method == method)


class WireServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self.default = Answer(status=404, body=b"{}", headers={"Content-Type": "application/json"})
        self._httpd = _Server((host, port), _Handler)
        self._httpd.wire = self
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> WireServer:
        # A short poll interval: stop() waits up to one interval, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="wire-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a `delay`
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --

    def respond(
        self,
        *,
        status: int = 200,
        json: Any = None,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
        method: str | None = None,
        times: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Add an answer rule. `json` is serialised (UTF-8, Content-Type set); `body` is sent as is."""
        all_headers = dict(headers or {})
        if json is not None:
            payload = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            payload = body.encode("utf-8")
            all_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            payload = body or b""
        answer = Answer(status=status, body=payload, headers=all_headers, delay=delay, drop=drop)
        with self._lock:
            self._rules.append(_Rule(answer, path, method, times))

    def respond_with(
        self,
        compute: Callable[[RecordedRequest], Answer | None],
        *,
        path: str | None = None,
        method: str | None = None,
        times: int | None = None,
    ) -> None:
        """Add a rule whose answer `compute(request)` makes; None passes the request to older rules."""
        with self._lock:
            self._rules.append(_Rule(Answer(), path, method, times, compute))

    def clear(self) -> None:
        """Forget recorded requests and rules."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()

    # -- inspection --

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the wire server received no request")
            return self._requests[-1]

    # -- used by the handler --

    def _record_and_choose(self, request: RecordedRequest) -> Answer:
        with self._lock:
            self._requests.append(request)
            for rule in reversed(self._rules):
                if rule.matches(request.method, request.path):
                    answer = rule.answer if rule.compute is None else rule.compute(request)
                    if answer is None:
                        continue
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return answer
            return self.default

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping in `delay` must not hold up stop()
    wire: WireServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) leaves a broken pipe behind: expected, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(method=self.command, target=self.path, headers=headers, body=body)
        answer = self.server.wire._record_and_choose(request)
        if answer.delay:
            self.server.wire._wait(answer.delay)
        if answer.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass
