"""A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to back.

Written with asyncio and raw sockets so that the client costs as little CPU as possible beside the
server on a small machine; both sides of every comparison are measured with it, in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> str:
        return (
            f"{self.rps:8.0f} req/s  p50 {self.percentile(50) * 1000:6.1f} ms  "
            f"p99 {self.percentile(99) * 1000:6.1f} ms  ({self.requests} requests, {self.errors} errors)"
        )


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    deadline: float,
    counter: list[int],
    limit: int | None,
    result: Result,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            if limit is not None:
                if counter[0] >= limit:
                    break
                counter[0] += 1
            request = make_request(counter[0])
            started = time.perf_counter()
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                result.requests += 1
            else:
                result.errors += 1
    finally:
        writer.close()


def run(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int = 16,
    seconds: float = 10.0,
    limit: int | None = None,
) -> Result:
    result = Result(0, 0, 0.0, [], {})

    async def main() -> None:
        started = time.perf_counter()
        deadline = started + seconds
        counter = [0]
        await asyncio.gather(
            *(
                _connection(host, port, make_request, deadline, counter, limit, result)
                for _ in range(concurrency)
            )
        )
        result.seconds = time.perf_counter() - started

    asyncio.run(main())
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
