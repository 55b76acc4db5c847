"""Test set-up: a real PostgreSQL database and a real Redis server of this test session's own, migrated
by Alembic; helpers to run real Celery worker and beat processes, a live web server and the provider
simulator.

The session's database is created on the PostgreSQL at 127.0.0.1:5432 (or TEST_POSTGRES_URL) and
dropped at the end; Redis is a private `redis-server` on a free port, so a test may stop and restart it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

ADMIN_PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_state: dict[str, Any] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until `condition()` is truthy; its value, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


# --- Redis --------------------------------------------------------------------------------------------


class RedisServer:
    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (see .ci/run)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
        )
        wait_for(self.ping, 10, what="redis-server to start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# --- PostgreSQL ---------------------------------------------------------------------------------------


def _admin_exec(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(ADMIN_PG.replace("postgresql://", "postgres://", 1))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _database_url(name: str) -> str:
    base, _, _ = ADMIN_PG.rpartition("/")
    return f"{base}/{name}"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    folder = Path(tempfile.mkdtemp(prefix="smsqueue-tests-"))
    name = f"smsq_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _admin_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise pytest.UsageError(
            f"PostgreSQL is not reachable at {ADMIN_PG} ({exc}): start it or set TEST_POSTGRES_URL"
        ) from exc
    redis_server = RedisServer(free_port(), folder)
    redis_server.start()
    _state.update(folder=folder, db_name=name, redis=redis_server)
    env = {
        "DATABASE_URL": _database_url(name),
        "CELERY_BROKER_URL": f"{redis_server.url}/0",
        "REDIS_URL": f"{redis_server.url}/1",
        "SMSQUEUE_SECRET_KEY": "test-secret-key-" + secrets.token_hex(8),
        "SMSQUEUE_ALLOW_PRIVATE_CALLBACKS": "true",
        "SMSQUEUE_DATA_DIR": str(folder / "data"),
        "SMSQUEUE_LOG_LEVEL": "INFO",
        # Fast clocks for the sweeps, polls and retries, so pipelines finish in seconds.
        "SMSQUEUE_SWEEP_INTERVAL": "0.3",
        "SMSQUEUE_LOST_PUBLISH_AFTER": "2",
        "SMSQUEUE_STALLED_SENDING_AFTER": "4",
        "SMSQUEUE_STATUS_CHECK_FIRST": "0.3",
        "SMSQUEUE_STATUS_CHECK_MAX": "1",
        "SMSQUEUE_RETRY_BASE_SECONDS": "0.2",
        "SMSQUEUE_RETRY_MAX_SECONDS": "1",
    }
    os.environ.update(env)
    _state["env"] = env
    from smsqueue.cli import db_upgrade

    db_upgrade()


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or "db_name" not in _state:
        return
    from smsqueue.db import reset_engine

    reset_engine()
    _state["redis"].stop()
    try:
        _admin_exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{_state['db_name']}' AND pid <> pg_backend_pid()"
        )
        _admin_exec(f'DROP DATABASE IF EXISTS "{_state["db_name"]}"')
    finally:
        shutil.rmtree(_state["folder"], ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return _state["redis"]


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    return dict(_state["env"])


@pytest.fixture(scope="session")
def tmp_folder() -> Path:
    return _state["folder"]


TABLES = (
    "message_events",
    "messages",
    "api_key_entities",
    "api_keys",
    "entity_providers",
    "providers",
    "legal_entities",
    "metric_counters",
)


def truncate_all() -> None:
    from sqlalchemy import text

    from smsqueue import auth, entity_cache
    from smsqueue.db import transaction

    with transaction() as conn:
        existing = set(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        )
        tables = [t for t in existing if t != "alembic_version"]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    entity_cache.invalidate()
    auth.forget_cache()


@pytest.fixture(autouse=True)
def clean_database() -> Iterator[None]:
    """Every test starts from empty tables (the schema stays: it is the migrations'), and with the
    publishing breaker closed (a broker failure staged by one test must not skip another's publish)."""
    from smsqueue.tasks import doorbell

    truncate_all()
    doorbell._broken_until = 0.0
    yield


# --- the app and its data -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app() -> Any:
    from smsqueue.web import create_app

    application = create_app()
    application.testing = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def factory() -> Any:
    from factories import Factory

    return Factory()


# --- processes ----------------------------------------------------------------------------------------


class Proc:
    """A child process of the test (worker, beat, web) with its output in a file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}-{secrets.token_hex(3)}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = 9) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.alive():
            self.kill(15)
        self.log.close()


BIN = Path(sys.executable).parent
CELERY = [str(BIN / "celery"), "-A", "smsqueue.tasks.celery_app"]
ALL_QUEUES = "send,status,webhooks,periodic"


class Processes:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = {**os.environ, **env}
        self.folder = folder
        self.procs: list[Proc] = []

    def worker(
        self,
        queues: str = ALL_QUEUES,
        concurrency: int = 2,
        pool: str = "prefork",
        name: str | None = None,
        **extra_env: str,
    ) -> Proc:
        name = name or f"worker{len(self.procs)}"
        cmd = [
            *CELERY,
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        proc = Proc(name, cmd, {**self.env, **extra_env}, self.folder)
        self.procs.append(proc)
        wait_for(lambda: "ready." in proc.output() or not proc.alive(), 60, 0.1, f"{name} to start")
        assert proc.alive(), proc.output()
        return proc

    def beat(self, **extra_env: str) -> Proc:
        schedule = self.folder / f"beat-{secrets.token_hex(3)}"
        cmd = [*CELERY, "beat", "-s", str(schedule), "--loglevel", "INFO"]
        proc = Proc("beat", cmd, {**self.env, **extra_env}, self.folder)
        self.procs.append(proc)
        wait_for(lambda: "beat: Starting" in proc.output() or not proc.alive(), 60, 0.1, "beat to start")
        assert proc.alive(), proc.output()
        return proc

    def web(self, workers: int = 1, access_log: bool = False, **extra_env: str) -> tuple[Proc, str]:
        """The web as the Procfile runs it (gunicorn, threads), on a free port: (process, base URL)."""
        port = free_port()
        cmd = [
            str(BIN / "gunicorn"),
            "smsqueue.web:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--no-control-socket",
            *(["--access-logfile", "-"] if access_log else []),
        ]
        proc = Proc("web", cmd, {**self.env, **extra_env}, self.folder)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _http_ok(f"{url}/healthz") or not proc.alive(), 60, 0.1, "gunicorn to answer")
        assert proc.alive(), proc.output()
        return proc, url

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def _http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, test_env: dict[str, str], tmp_folder: Path, redis_server: RedisServer
) -> Iterator[Processes]:
    procs = Processes(test_env, tmp_folder)
    # The broker may hold doorbells from earlier tests whose rows are gone: start from an empty broker.
    import redis

    redis.Redis.from_url(test_env["CELERY_BROKER_URL"]).flushdb()
    yield procs
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:  # the processes' own logs are the first thing to read when a pipeline test fails
        for proc in procs.procs:
            print(
                f"\n----- {proc.name} (last 150 lines) -----\n" + "\n".join(proc.output().splitlines()[-150:])
            )
    procs.stop_all()


@pytest.fixture
def simulator() -> Iterator[Any]:
    from smsqueue.providers.simulator import Simulator

    sim = Simulator(kind="smsc").start()
    yield sim
    sim.stop()


@pytest.fixture
def sims() -> Iterator[Callable[..., Any]]:
    """Simulators made by the test, stopped at its end: `sims("smsc", behaviour={...})`."""
    from smsqueue.providers.simulator import Simulator

    started: list[Simulator] = []

    def make(kind: str = "smsc", **kwargs: Any) -> Simulator:
        sim = Simulator(kind=kind, **kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app on a real port (for providers that push reports, and webhooks' round trips)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
