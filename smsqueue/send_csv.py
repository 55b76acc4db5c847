"""`smsqueue send-csv FILE --entity CODE`: a CSV job submitted through the HTTP API, its progress shown
until it is done (and with --wait until every message is final), then a summary.

On a terminal the progress is a live bar (rich): rows read, accepted, invalid, then the messages by
status; otherwise (a log, a pipe) a plain line every few seconds. The job id is the first line printed
on stdout and the summary the last ones, either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

FINAL = ("delivered", "undelivered", "failed", "rejected", "canceled", "expired")
UNFINISHED = ("pending", "running")
PLAIN_EVERY = 5.0  # seconds between the plain progress lines


class ApiFailure(Exception):
    """The API refused a request; the message is its problem's code and detail."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("send-csv", help="send a CSV file as a job through the HTTP API, with its progress")
    p.add_argument("file", type=Path, help="the CSV file (UTF-8, `,` or `;`, a header row with `to`)")
    p.add_argument("--entity", required=True, metavar="CODE", help="the legal entity to send for")
    p.add_argument("--template", metavar="CODE", help="a template of the entity (columns fill it in)")
    p.add_argument("--send-at", metavar="TIME", help="ISO-8601 with an offset: not before this time")
    p.add_argument("--name", help="the job's name (default: the file's name)")
    p.add_argument("--wait", action="store_true", help="also wait until every message is final")
    p.add_argument("--url", default=None, help="the API (default http://127.0.0.1:$PORT)")
    p.add_argument("--key", default=None, help="an API key (default $SMSQUEUE_API_KEY)")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.session.request(method, self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)
        except requests.RequestException as exc:
            raise ApiFailure(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                raise ApiFailure(f"HTTP {r.status_code}") from None
            fields = "; ".join(
                f"{e['field']}: {e['code']} ({e['message']})" for e in body.get("errors") or []
            )
            raise ApiFailure(
                f"{body.get('code')}: {body.get('detail', '')}" + (f" - {fields}" if fields else "")
            )
        return r.json()


def run(args: argparse.Namespace) -> int:
    url = args.url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    key = args.key or os.environ.get("SMSQUEUE_API_KEY")
    if not key:
        print("send-csv: give --key or set SMSQUEUE_API_KEY", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"send-csv: no file {args.file}", file=sys.stderr)
        return 2
    client = Client(url, key)
    console = Console()
    params = {"legal_entity": args.entity, "name": args.name or args.file.name}
    if args.template:
        params["template"] = args.template
    if args.send_at:
        params["send_at"] = args.send_at
    try:
        with open(args.file, "rb") as fh:
            job = client.call(
                "POST",
                "/api/v1/jobs",
                params=params,
                data=fh,
                headers={"Content-Type": "text/csv"},
                timeout=600,
            )
        print(job["id"], flush=True)
        job = follow(client, console, job["id"], args.wait, args.interval)
        summary(client, job)
    except ApiFailure as exc:
        print(f"send-csv: {exc}", file=sys.stderr)
        return 2
    return 0 if job["status"] == "done" else 1


def _messages_final(job: dict[str, Any]) -> bool:
    counts = job.get("by_status") or {}
    return sum(counts.get(s, 0) for s in FINAL) >= job["accepted"]


def _finished(job: dict[str, Any], wait: bool) -> bool:
    if job["status"] in UNFINISHED:
        return False
    return not wait or job["status"] != "done" or _messages_final(job)


def follow(client: Client, console: Console, job_id: str, wait: bool, interval: float) -> dict[str, Any]:
    read = lambda: client.call("GET", f"/api/v1/jobs/{job_id}")  # noqa: E731
    if not console.is_terminal:
        return _follow_plain(read, wait, interval)
    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[note]}"), console=console) as bar:
        rows = bar.add_task("rows", total=None, note="")
        sent = bar.add_task("messages", total=None, note="", visible=wait)
        while True:
            job = read()
            seen = job["accepted"] + job["invalid"]
            bar.update(
                rows,
                completed=seen,
                total=job["rows"],
                note=f"accepted {job['accepted']}, invalid {job['invalid']} ({job['status']})",
            )
            counts = job.get("by_status") or {}
            final = sum(counts.get(s, 0) for s in FINAL)
            bar.update(sent, completed=final, total=job["accepted"] or None, note=_counts(counts))
            if _finished(job, wait):
                return job
            time.sleep(interval)


def _follow_plain(read: Any, wait: bool, interval: float) -> dict[str, Any]:
    last = 0.0
    while True:
        job = read()
        if time.monotonic() - last >= PLAIN_EVERY:
            last = time.monotonic()
            print(_line(job), flush=True)
        if _finished(job, wait):
            return job
        time.sleep(interval)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) or "-"


def _line(job: dict[str, Any]) -> str:
    rows = "?" if job["rows"] is None else job["rows"]
    return (
        f"{job['status']}: rows {job['accepted'] + job['invalid']}/{rows}, accepted {job['accepted']}, "
        f"invalid {job['invalid']}; messages: {_counts(job.get('by_status') or {})}"
    )


def summary(client: Client, job: dict[str, Any], out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    errors = client.call("GET", f"/api/v1/jobs/{job['id']}/errors", params={"limit": 10})["items"]
    for e in errors:
        print(f"  row {e['row']}: {e['field']}: {e['code']} ({e['message']})", file=out)
    if job["invalid"] > len({e["row"] for e in errors}):
        print(f"  ... GET /api/v1/jobs/{job['id']}/errors lists them all", file=out)
    print(f"job {job['id']} {job['status']}", file=out)
    print(f"accepted {job['accepted']}, invalid {job['invalid']}", file=out)
    print(f"by status: {_counts(job.get('by_status') or {})}", file=out, flush=True)
