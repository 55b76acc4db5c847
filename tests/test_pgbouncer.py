"""Behind a real PgBouncer (Debian's package) in transaction pooling mode: with
SMSQUEUE_PREPARED_STATEMENTS=false the web and the worker keep no session state, so every message is
accepted and sent; with the per-connection PREPARE left on, the same load fails (the control that shows
the setting is what makes the difference)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import free_port, wait_for
from test_pipeline import statuses

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(test_env):
    """A PgBouncer in front of the test PostgreSQL, transaction pooling, one server connection per
    database (so that two clients' transactions surely share one), as an unprivileged user."""
    assert Path(PGBOUNCER).exists(), "pgbouncer is not installed (apt-get install pgbouncer; see .ci/run)"
    parts = urlsplit(test_env["DATABASE_URL"])
    port = free_port()
    # Not under pytest's tmp_path: its root is private to root, and pgbouncer runs as nobody.
    folder = Path(tempfile.mkdtemp(prefix="smsqueue-pgbouncer-"))
    (folder / "users.txt").write_text(f'"{parts.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={parts.hostname} port={parts.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 1
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    os.chmod(folder, 0o777)
    for f in folder.iterdir():
        os.chmod(f, 0o644)
    user = [] if os.geteuid() else ["-u", "nobody"]  # it refuses to run as root
    proc = subprocess.Popen([PGBOUNCER, *user, str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _accepts(port), 20, 0.1, "pgbouncer to listen")
        yield test_env["DATABASE_URL"].replace(parts.netloc, f"{parts.username}@127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def post_many(url: str, headers: dict[str, str], count: int) -> list[requests.Response]:
    def one(i: int) -> requests.Response:
        body = {"to": f"+7916{i:07d}", "text": f"via pgbouncer {i}"}
        return requests.post(f"{url}/api/v1/messages", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def test_sending_through_pgbouncer_transaction_pooling(processes, factory, simulator, pgbouncer):
    entity = factory.entity(factory.provider(simulator.url))
    headers = factory.headers(entity)
    env = {"DATABASE_URL": pgbouncer, "SMSQUEUE_PREPARED_STATEMENTS": "false"}
    processes.worker(**env)
    processes.beat(**env)
    _, web = processes.web(**env)
    answers = post_many(web, headers, 40)
    assert [a.status_code for a in answers] == [202] * 40, [a.text for a in answers if a.status_code != 202]
    ids = [a.json()["id"] for a in answers]
    wait_for(lambda: set(statuses(ids).values()) == {"delivered"}, 60, 0.2, "every message delivered")
    assert len(simulator.received()) == 40


def test_the_prepared_statement_breaks_behind_pgbouncer(processes, factory, pgbouncer):
    """The control: the same load with the PREPARE on fails (so the test above tests the setting)."""
    entity = factory.entity(factory.provider())
    _, web = processes.web(DATABASE_URL=pgbouncer, SMSQUEUE_PREPARED_STATEMENTS="true")
    answers = post_many(web, factory.headers(entity), 40)
    assert any(a.status_code != 202 for a in answers)
