"""CSV jobs in real processes: a job worker SIGKILLed mid-job is resumed by the sweep on another worker
and no row becomes two messages; a job's messages go to the provider like any other; a 300 MiB body is
refused by the real web (gunicorn) with 413 and leaves nothing behind."""

from __future__ import annotations

import socket
import threading
from collections import Counter

import pytest
from conftest import wait_for
from sqlalchemy import func, select

from smsqueue.db import transaction
from smsqueue.models import Job, JobChunk, Message

pytestmark = pytest.mark.pipeline

FAST_JOBS = {"SMSQUEUE_JOB_BATCH_ROWS": "500", "SMSQUEUE_JOB_LEASE_SECONDS": "2"}


def csv_body(rows: int) -> bytes:
    return b"to,text,reference\n" + b"".join(b"+7916%07d,text %d,ref-%d\n" % (i, i, i) for i in range(rows))


def job_state(client, headers, job_id: str) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).json


def test_a_worker_killed_mid_job_is_resumed_and_no_row_becomes_two_messages(client, factory, processes):
    entity = factory.entity(factory.provider())
    headers = factory.headers(entity)
    processes.beat(**FAST_JOBS)
    worker = processes.worker(queues="jobs,periodic", concurrency=1, **FAST_JOBS)
    total = 20_000
    r = client.post("/api/v1/jobs", data=csv_body(total), content_type="text/csv", headers=headers)
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    wait_for(lambda: job_state(client, headers, job_id)["accepted"] >= 2000, 120, 0.02, "some rows stored")
    worker.kill(9)
    at_kill = job_state(client, headers, job_id)
    assert at_kill["status"] == "running" and at_kill["accepted"] < total, (
        "done before the kill: proved nothing"
    )
    processes.worker(queues="jobs,periodic", concurrency=1, **FAST_JOBS)
    done = wait_for(
        lambda: (j := job_state(client, headers, job_id))["status"] == "done" and j,
        180,
        0.2,
        "the job to finish",
    )
    assert (done["rows"], done["accepted"], done["invalid"]) == (total, total, 0)
    with transaction() as conn:
        rows = Counter(
            conn.execute(select(Message.job_row).where(Message.legal_entity_id == entity.id)).scalars()
        )
    assert len(rows) == total and max(rows.values()) == 1 and set(rows) == set(range(2, total + 2))


def test_a_jobs_messages_are_sent_like_any_other(client, factory, processes, simulator):
    simulator.set_behaviour(delivery_delay=0.1)
    entity = factory.entity(factory.provider(simulator.url))
    headers = factory.headers(entity)
    processes.beat()
    processes.worker()
    processes.worker(queues="jobs", concurrency=1)
    r = client.post("/api/v1/jobs", data=csv_body(40), content_type="text/csv", headers=headers)
    job_id = r.json["id"]
    wait_for(
        lambda: job_state(client, headers, job_id)["by_status"] == {"delivered": 40},
        120,
        0.2,
        "every delivery",
    )
    refs = Counter(m.ref for m in simulator.received())
    assert len(refs) == 40 and max(refs.values()) == 1
    listed = client.get("/api/v1/messages", query_string={"job": job_id, "limit": 100}, headers=headers).json
    assert len(listed["items"]) == 40 and {m["status"] for m in listed["items"]} == {"delivered"}


def _raw_post(url: str, key: str, head: dict[str, str], body_chunks) -> bytes:
    """POST with a body sent in a thread while the answer is read (a server that refuses early answers
    before the body is through)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=120)
    lines = ["POST /api/v1/jobs HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {key}",
             "Content-Type: text/csv"] + [f"{k}: {v}" for k, v in head.items()]  # fmt: skip
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send() -> None:
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server closed the connection after answering: what a 413 does

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    while b"\r\n\r\n" not in answer or b'"code"' not in answer:
        piece = sock.recv(65536)
        if not piece:
            break
        answer += piece
    sock.close()
    return answer


def test_a_300_mib_body_is_413_and_stores_nothing(factory, processes):
    entity = factory.entity(factory.provider())
    key = factory.key(entity)
    _, url = processes.web()
    mib = b"to,text\n" + b"+79161234567,x\n" * (1024 * 1024 // 15)

    declared = _raw_post(url, key, {"Content-Length": str(300 * 1024 * 1024)}, iter([mib]))
    assert declared.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in declared, declared[:300]

    def chunked():
        for _ in range(300):
            yield b"%x\r\n%s\r\n" % (len(mib), mib)
        yield b"0\r\n\r\n"

    streamed = _raw_post(url, key, {"Transfer-Encoding": "chunked"}, chunked())
    assert streamed.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in streamed, streamed[:300]
    assert b"256 MiB" in streamed
    with transaction() as conn:
        assert conn.execute(select(func.count()).select_from(Job)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(JobChunk)).scalar_one() == 0
