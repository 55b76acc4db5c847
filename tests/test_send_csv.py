"""`smsqueue send-csv` end to end against a real web (gunicorn), job worker, sender and simulator: the job
id first, progress, a summary last; a live bar on a terminal, plain lines otherwise; refusals on stderr."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.pipeline


def send_csv(*args: str, key: str, url: str, tty: bool = False) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "smsqueue.cli", "send-csv", *args, "--url", url, "--interval", "0.3"]
    env = {**os.environ, "SMSQUEUE_API_KEY": key, "COLUMNS": "120"}
    if not tty:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    out = b""
    while True:
        try:
            piece = os.read(leader, 65536)
        except OSError:
            break
        if not piece:
            break
        out += piece
    proc.wait(180)
    os.close(leader)
    return proc.returncode, out.decode(errors="replace"), proc.stderr.read().decode()


@pytest.fixture
def service(factory, processes, simulator):
    simulator.set_behaviour(delivery_delay=0.1)
    entity = factory.entity(factory.provider(simulator.url))
    processes.beat()
    processes.worker()
    processes.worker(queues="jobs", concurrency=1)
    _, url = processes.web()
    return entity, factory.key(entity), url


def test_send_csv_waits_for_every_message_and_prints_a_summary(service, tmp_path):
    entity, key, url = service
    path = tmp_path / "debts.csv"
    rows = "".join(f"+7916{i:07d};Платёж {i}\n" for i in range(30))
    path.write_text("to;text\n" + rows + "bad;x\n", encoding="utf-8-sig")
    code, out, err = send_csv(str(path), "--entity", entity.code, "--wait", key=key, url=url)
    assert code == 0, err
    lines = out.splitlines()
    uuid.UUID(lines[0])  # the job id first
    assert any(line.startswith(("pending:", "running:", "done:")) for line in lines[1:])  # plain progress
    assert lines[-3:] == [f"job {lines[0]} done", "accepted 30, invalid 1", "by status: delivered 30"]
    assert "  row 32: to: invalid_phone" in out


def test_send_csv_shows_a_live_bar_on_a_terminal(service, tmp_path):
    entity, key, url = service
    path = tmp_path / "small.csv"
    path.write_text("to,text\n+79161234567,hi\n", encoding="utf-8")
    code, out, err = send_csv(str(path), "--entity", entity.code, key=key, url=url, tty=True)
    assert code == 0, err
    assert "rows" in out and "accepted 1, invalid 0" in out and "\x1b[" in out  # rich drew it
    assert out.rstrip().splitlines()[-2] == "accepted 1, invalid 0"


def test_send_csv_reports_refusals_on_stderr(service, tmp_path):
    entity, key, url = service
    path = tmp_path / "no-to.csv"
    path.write_text("phone,text\n+79161234567,x\n", encoding="utf-8")
    code, out, err = send_csv(str(path), "--entity", entity.code, key=key, url=url)
    assert code == 2 and out == ""
    assert "validation_error" in err and "file: invalid_csv" in err and "no `to` column" in err
    code, _, err = send_csv(str(path), "--entity", entity.code, key="sq_wrong", url=url)
    assert code == 2 and "unauthorized" in err
