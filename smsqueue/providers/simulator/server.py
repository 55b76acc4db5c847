"""The simulator's HTTP server, built for speed (>= 2000 send requests/s on 2 cores with keep-alive
clients): threading HTTP/1.1, one write per response, Nagle off, no request logging. It knows nothing
of providers: every request goes to one `answer` callable."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smsqueue.providers.simulator.wire import Reply, http_phrase, text_reply

log = logging.getLogger(__name__)

# (method, target with its query string, headers, body) -> the reply
Answer = Callable[[str, str, Mapping[str, str], bytes], Reply]


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # benchmarks open many keep-alive connections at once

    def __init__(self, address: tuple[str, int], answer: Answer) -> None:
        super().__init__(address, _Handler)
        self.answer = answer
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
    server: SimHTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.answer(self.command, self.path, self.headers, body)
        except Exception:
            log.exception("simulator failed on %s %s", self.command, self.path.partition("?")[0])
            reply = text_reply("simulator error", 500)
        head = (
            f"HTTP/1.1 {reply.status} {http_phrase(reply.status, 'Status')}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            + ("Connection: close\r\n" if self.close_connection else "")
            + "\r\n"
        )
        self.wfile.write(head.encode("latin-1") + reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # one log line per request would halve throughput
        pass
