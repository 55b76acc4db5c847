"""Delivery-report pushes: when a message becomes final, POST the dialect's report to its report URL,
from one background thread. A failed push is counted, never raised."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

import requests

from smsqueue.providers.simulator.state import SimMessage

log = logging.getLogger(__name__)

REPORT_TIMEOUT = 5.0


class ReportPusher:
    def __init__(self, build_reports: Callable[[SimMessage], list[tuple[bytes, str]]]) -> None:
        """`build_reports` turns a final message into the provider's reports: (body, content type)s."""
        self._build_reports = build_reports
        self._due: list[tuple[float, int, SimMessage]] = []  # a heap by deliver_at, then arrival
        self._order = itertools.count()
        self._wake = threading.Condition()  # also guards the counts
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self.pushed = 0
        self.failed = 0

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
            heapq.heappush(self._due, (message.deliver_at, next(self._order), message))
            self._wake.notify()

    def clear(self) -> None:
        """Drop the reports not pushed yet and zero the counts."""
        with self._wake:
            self._due.clear()
            self.pushed = self.failed = 0

    def counts(self) -> dict[str, int]:
        with self._wake:
            return {"reports_pushed": self.pushed, "report_failures": self.failed}

    def _run(self) -> None:
        while True:
            message = self._next_due()
            if message is None:
                return
            self._push(message)

    def _next_due(self) -> SimMessage | None:
        with self._wake:
            while not self._stopping:
                if self._due and self._due[0][0] <= time.time():
                    return heapq.heappop(self._due)[2]
                timeout = self._due[0][0] - time.time() if self._due else None
                self._wake.wait(timeout)
            return None

    def _push(self, message: SimMessage) -> None:
        for body, content_type in self._build_reports(message):
            self._push_one(message, body, content_type)

    def _push_one(self, message: SimMessage, body: bytes, content_type: str) -> None:
        assert message.report_url is not None
        try:
            response = self._session.post(
                message.report_url, data=body, headers={"Content-Type": content_type}, timeout=REPORT_TIMEOUT
            )
            ok = response.status_code < 300
        except requests.RequestException as exc:
            log.info("simulator report push failed: %s", type(exc).__name__)
            ok = False
        with self._wake:
            if ok:
                self.pushed += 1
            else:
                self.failed += 1
