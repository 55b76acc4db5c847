"""The CSV job bench (`bench/run.py --only job`): an N-row file from POST /api/v1/jobs until every row is
accepted (the job `done`), with the rows per second and the peak resident memory of the web and the job
worker processes; then, if asked, a smaller job end to end to the provider simulator."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: int, offset: int = 0) -> int:
    """A file as an accounting system exports it: `;`, a BOM, Cyrillic, a reference per row."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write("to;text;reference\n")
        for i in range(offset, offset + rows):
            fh.write(f"+7916{i % 10_000_000:07d};Уважаемый клиент, платёж {i % 9973} руб. до 05.12;ref-{i}\n")
    return path.stat().st_size


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """The largest resident size any one process of each group reached, sampled every 0.1 s."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.peak = dict.fromkeys(groups, 0.0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for name, pid in self.groups.items():
                for p in descendants(pid):
                    self.peak[name] = max(self.peak[name], rss_mib(p))
            time.sleep(0.1)

    def close(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        return self.peak


def api(url: str, key: str, method: str = "GET", body: Any = None, content_type: str = "") -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def post_file(base: str, key: str, path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        req = urllib.request.Request(
            f"{base}/api/v1/jobs?name=bench",
            data=fh,
            method="POST",
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "text/csv",
                "Content-Length": str(os.path.getsize(path)),
            },
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())


def until_done(base: str, key: str, job_id: str, timeout: float = 1800) -> dict[str, Any]:
    """Polls the jobs list (no count of messages by status: that would load the database it measures)."""
    deadline = time.monotonic() + timeout
    while True:
        (job,) = [j for j in api(f"{base}/api/v1/jobs?limit=5", key)["items"] if j["id"] == job_id]
        if job["status"] not in ("pending", "running") or time.monotonic() > deadline:
            return api(f"{base}/api/v1/jobs/{job_id}", key)
        time.sleep(0.25)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run_job(
    base: str, key: str, path: Path, web_pid: int, worker_pid: int, db_pids: Callable[[], list[int]]
) -> dict[str, Any]:
    """Also the CPU seconds the job worker and the database's backends used (a figure the machine's
    other load changes far less than the wall clock)."""
    peaks = PeakRss({"web": web_pid, "worker": worker_pid})
    worker_cpu = cpu_seconds(descendants(worker_pid))
    backends = db_pids()
    db_cpu = cpu_seconds(backends)
    started = time.perf_counter()
    job = post_file(base, key, path)
    posted = time.perf_counter() - started
    job = until_done(base, key, job["id"])
    elapsed = time.perf_counter() - started
    peak = peaks.close()
    worker_cpu = cpu_seconds(descendants(worker_pid)) - worker_cpu
    # Backends of the whole run: those already there (the worker's pool) and those opened since.
    later = [p for p in db_pids() if p not in backends]
    db_cpu = cpu_seconds(backends) - db_cpu + cpu_seconds(later)
    fetched = time.perf_counter()
    api(f"{base}/api/v1/jobs/{job['id']}", key)
    read = time.perf_counter() - fetched
    return {
        "job": job,
        "seconds": elapsed,
        "post_seconds": posted,
        "peak": peak,
        "worker_cpu": worker_cpu,
        "db_cpu": db_cpu,
        "get_seconds": read,
    }
