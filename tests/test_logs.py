"""Structured logs: JSON lines with SMSQUEUE_LOG_FORMAT=json, and a request id (X-Request-Id, else a new
one, echoed) that follows a message from the HTTP request into the worker's lines for it; no secret in
any line."""

from __future__ import annotations

import json

import requests
from conftest import wait_for
from test_pipeline import statuses


def json_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_the_request_id_follows_a_message_into_the_worker(processes, factory, simulator):
    entity = factory.entity(factory.provider(simulator.url))
    key = factory.key(entity)
    env = {"SMSQUEUE_LOG_FORMAT": "json"}
    worker = processes.worker(**env)
    processes.beat(**env)
    web_proc, web = processes.web(**env)
    answer = requests.post(
        f"{web}/api/v1/messages",
        json={"to": "+79161234567", "text": "hello"},
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": "req-abc.123"},
        timeout=10,
    )
    assert answer.status_code == 202 and answer.headers["X-Request-Id"] == "req-abc.123"
    mid = answer.json()["id"]
    wait_for(lambda: statuses([mid])[mid] in ("sent", "delivered"), 30, 0.2, "the message sent")
    lines = json_lines(worker.output())
    mine = [line for line in lines if line.get("request_id") == "req-abc.123"]
    # The claim takes due messages by query, whatever request rang: the line for this one carries its id.
    assert any(f"sending message {mid}" in line["message"] for line in mine), lines[-20:]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    generated = requests.get(
        f"{web}/api/v1/messages/{mid}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert len(generated.headers["X-Request-Id"]) == 32
    hostile = requests.get(f"{web}/healthz", headers={"X-Request-Id": "a b\tc" + "x" * 200}, timeout=10)
    assert hostile.headers["X-Request-Id"] != "a b\tc" + "x" * 200
    for output in (worker.output(), web_proc.output()):
        assert key not in output
