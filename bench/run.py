"""`make bench`: the product's figures beside baselines measured in the same run, on this machine.

- single-message ingest: POST /api/v1/messages, concurrency 16, under gunicorn as in the Procfile, beside
  a minimal Flask endpoint doing one psycopg2 INSERT + commit and one Redis LPUSH under the same gunicorn
  settings; rounds alternate between the two so that a noisy neighbour hurts both alike;
- batch ingest: messages/s with 1000-message batches;
- end to end: messages/s from the first POST until the provider simulator has every message, with
  every message accounted for (each received once, each row `sent` or later);
- the rules check (bench/bench_rules.py), when present;
- CSV jobs (bench/bench_job.py): an N-row file from POST /api/v1/jobs until every row is accepted, rows/s
  and the peak memory of the web and the job worker; then a smaller job end to end to the simulator.

Everything runs on a PostgreSQL database and a Redis server of its own, made and removed here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))

import bench_job  # noqa: E402
import bench_ops  # noqa: E402
import loadgen  # noqa: E402

ADMIN_PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def procfile_web_args() -> list[str]:
    """The gunicorn options of the Procfile's web line, with its defaults for the variables."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), line[4:])
    import shlex

    args = shlex.split(command)
    assert args[0] == "gunicorn"
    out, skip = [], False
    for i, arg in enumerate(args[2:], start=2):  # drop "gunicorn" and the app
        if skip:
            skip = False
            continue
        if arg in ("--bind", "--access-logfile"):
            skip = True
            continue
        out.append(arg)
        del i
    return out


class Env:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="smsqueue-bench-"))
        self.db = f"smsq_bench_{secrets.token_hex(4)}"
        self.redis_port = free_port()
        base = ADMIN_PG.rsplit("/", 1)[0]
        self.database_url = f"{base}/{self.db}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": f"{self.redis_url}/0",
            "REDIS_URL": f"{self.redis_url}/1",
            "SMSQUEUE_SECRET_KEY": "bench-" + secrets.token_hex(8),
            "SMSQUEUE_DATA_DIR": str(self.folder / "data"),
            "SMSQUEUE_LOG_LEVEL": "WARNING",
            "BASELINE_DATABASE_URL": self.database_url,
            "BASELINE_REDIS_URL": f"{self.redis_url}/2",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def admin_sql(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(ADMIN_PG)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def sql(self, sql: str) -> Any:
        import psycopg2

        conn = psycopg2.connect(self.database_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else None
        conn.close()
        return rows

    def start(self, name: str, cmd: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            cmd,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def __enter__(self) -> Env:
        self.admin_sql(f'CREATE DATABASE "{self.db}"')
        self.start(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
        )
        wait_port(self.redis_port)
        subprocess.run(
            [str(BIN / "smsqueue"), "db", "upgrade"], env=self.env, check=True, capture_output=True
        )
        self.sql(
            "CREATE TABLE baseline_messages (id uuid PRIMARY KEY, recipient text, text text, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in list(self.procs):
            self.stop(proc)
        self.admin_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.db}' "
            "AND pid <> pg_backend_pid()"
        )
        self.admin_sql(f'DROP DATABASE IF EXISTS "{self.db}"')
        shutil.rmtree(self.folder, ignore_errors=True)


SETUP = """
import json, sys
from smsqueue.db import session_scope
from smsqueue.auth import create_key
from smsqueue.rules import admin
sim_url = sys.argv[1]
with session_scope() as s:
    p, _ = admin.create_provider(s, code="bench-smsc", kind="smsc", name="bench",
        settings={"base_url": sim_url, "login": "bench", "password": "bench-password"}, timeout_seconds=10)
    e, _ = admin.create_entity(s, code="bench", name="Bench LLC", send_window_from="00:00",
        send_window_to="24:00", fz_enabled=False)
    admin.link_provider(s, e, p, priority=1, sender="BENCH")
    key = create_key(s, "entity", ["bench"])
print(json.dumps({"key": key}))
"""


def setup_data(env: Env, sim_url: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SETUP, sim_url], env=env.env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["key"]


@contextmanager
def gunicorn(env: Env, app: str, name: str) -> Any:
    port = free_port()
    proc = env.start(
        name,
        [str(BIN / "gunicorn"), app, "--bind", f"127.0.0.1:{port}", *procfile_web_args()],
        PYTHONPATH=str(HERE),
    )
    wait_port(port)
    wait_booted(proc.pid, port)
    try:
        yield port
    finally:
        env.stop(proc)


def wait_booted(pid: int, port: int, timeout: float = 60.0) -> None:
    """Until the app answers and gunicorn's workers have finished importing it (their CPU use settles):
    the master listens before its workers are ready, and a request timed before then measures their
    start-up (it was most of what looked like a slow CSV upload)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
            break
        except OSError:
            time.sleep(0.2)
    used = bench_job.cpu_seconds(bench_job.descendants(pid))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = bench_job.cpu_seconds(bench_job.descendants(pid))
        if now - used < 0.05:
            return
        used = now


def single_request(port: int, path: str, headers: dict[str, str]) -> Any:
    def make(i: int) -> bytes:
        body = json.dumps({"to": f"+7916{i % 10_000_000:07d}", "text": "Your code is 1234"}).encode()
        return loadgen.build_request("127.0.0.1", port, path, body, headers)

    return make


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_proc() -> Iterator[tuple[str, str, list[str]]]:
    """(pid, process name, the stat fields after the name) of every process, from /proc."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        yield pid, stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_by_process() -> dict[str, float]:
    """CPU seconds used so far, by kind of process (from /proc): where a request's cost goes."""
    out: dict[str, float] = {}
    for pid, name, fields in read_proc():
        try:
            with open(f"/proc/{pid}/cmdline") as fh:
                cmd = fh.read()
        except OSError:
            continue
        kind = (
            "postgres" if name.startswith("postgres")
            else "redis" if name.startswith("redis")
            else "web" if "gunicorn" in cmd
            else "loadgen" if pid == str(os.getpid())
            else "other"
        )  # fmt: skip
        out[kind] = out.get(kind, 0.0) + cpu_seconds(fields)
    return out


def measured(run: Any) -> loadgen.Result:
    before = cpu_by_process()
    result = run()
    after = cpu_by_process()
    result.cpu = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}  # type: ignore[attr-defined]
    return result


def cpu_per_request(result: loadgen.Result) -> str:
    cpu = getattr(result, "cpu", {})
    parts = [f"{k} {v / max(result.requests, 1) * 1e6:.0f}" for k, v in sorted(cpu.items()) if k != "other"]
    return "CPU us/request: " + ", ".join(parts)


def bench_ingest(env: Env, key: str, seconds: float, rounds: int) -> dict[str, Any]:
    ours_r, base_r = [], []
    with (
        gunicorn(env, "smsqueue.web:create_app()", "web") as ours,
        gunicorn(env, "baseline:app", "baseline") as base,
    ):
        make_ours = single_request(ours, "/api/v1/messages", {"Authorization": f"Bearer {key}"})
        make_base = single_request(base, "/messages", {})
        loadgen.run("127.0.0.1", ours, make_ours, seconds=2)  # warm up both
        loadgen.run("127.0.0.1", base, make_base, seconds=2)
        for _ in range(rounds):
            base_r.append(
                measured(lambda: loadgen.run("127.0.0.1", base, make_base, concurrency=16, seconds=seconds))
            )
            ours_r.append(
                measured(lambda: loadgen.run("127.0.0.1", ours, make_ours, concurrency=16, seconds=seconds))
            )
    return {"ours": ours_r, "baseline": base_r}


def bench_batch(env: Env, key: str, seconds: float) -> loadgen.Result:
    with gunicorn(env, "smsqueue.web:create_app()", "web-batch") as port:

        def make(i: int) -> bytes:
            items = [
                {"to": f"+7903{(i * 1000 + j) % 10_000_000:07d}", "text": f"Batch {i} item {j}"}
                for j in range(1000)
            ]
            body = json.dumps({"messages": items}).encode()
            return loadgen.build_request(
                "127.0.0.1", port, "/api/v1/messages/batch", body, {"Authorization": f"Bearer {key}"}
            )

        loadgen.run("127.0.0.1", port, make, concurrency=2, seconds=2)
        return loadgen.run("127.0.0.1", port, make, concurrency=4, seconds=seconds)


def sim_stats(sim_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/_sim/stats", timeout=5) as r:
        return json.loads(r.read())


def bench_e2e(
    env: Env, key: str, sim_port: int, total: int, workers: int, concurrency: int
) -> dict[str, Any]:
    fresh_start(env, sim_port)
    procs = start_workers(env, workers, concurrency)
    with gunicorn(env, "smsqueue.web:create_app()", "web-e2e") as port:
        batches = [
            json.dumps(
                {
                    "messages": [
                        {"to": f"+7905{(b * 1000 + j):07d}", "text": f"E2E {b}/{j}"} for j in range(1000)
                    ]
                }
            ).encode()
            for b in range(total // 1000)
        ]
        started = time.perf_counter()
        for body in batches:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/messages/batch",
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 200
        posted = time.perf_counter() - started
        received = wait_received(env, sim_port, total)
        elapsed = time.perf_counter() - started
    for proc in procs:
        env.stop(proc)
    return accounted(env, sim_port, total, received, elapsed, posted)


def fresh_start(env: Env, sim_port: int) -> None:
    """An empty simulator, messages table and broker before an end-to-end run."""
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{sim_port}/_sim/reset", method="POST")
    ).read()
    env.sql("TRUNCATE messages, message_events CASCADE")
    # The ingest rounds rang a doorbell for every message they stored, with no worker running: those
    # (now pointless) tasks would otherwise be worked through first.
    import redis

    redis.Redis.from_url(env.env["CELERY_BROKER_URL"]).flushdb()


def start_workers(env: Env, workers: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    """Celery workers of every queue but the webhooks', and the beat, as the Procfile runs them."""
    celery = [str(BIN / "celery"), "-A", "smsqueue.tasks.celery_app"]
    procs = [
        env.start(
            f"worker{i}",
            [
                *celery,
                "worker",
                "-Q",
                "send,status,periodic",
                "-c",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"w{i}@%h",
                "--loglevel",
                "WARNING",
            ],
        )
        for i in range(workers)
    ]
    procs.append(
        env.start("beat", [*celery, "beat", "-s", str(env.folder / "beat"), "--loglevel", "WARNING"])
    )
    time.sleep(4)  # workers up
    return procs


def wait_received(env: Env, sim_port: int, total: int) -> int:
    """Wait until the simulator has every message, or nothing is left to send; how many it has."""
    deadline = time.monotonic() + 600
    while True:
        received = sim_stats(sim_port)["messages"]
        if received >= total or time.monotonic() > deadline:
            return received
        if received and not env.sql("SELECT 1 FROM messages WHERE status IN ('queued', 'sending') LIMIT 1"):
            return received  # nothing left to send: some never reached the simulator (reported)
        time.sleep(0.05)


def accounted(
    env: Env, sim_port: int, total: int, received: int, elapsed: float, posted: float
) -> dict[str, Any]:
    rows = dict(env.sql("SELECT status, count(*) FROM messages GROUP BY status"))
    stats = sim_stats(sim_port)
    return {
        "total": total,
        "received": received,
        "seconds": elapsed,
        "post_seconds": posted,
        "statuses": rows,
        "duplicates": stats["duplicate_refs"],
        "rate": received / elapsed,
    }


def celery_worker(env: Env, name: str, queues: str, concurrency: int) -> subprocess.Popen[bytes]:
    celery = [str(BIN / "celery"), "-A", "smsqueue.tasks.celery_app"]
    proc = env.start(
        name,
        [*celery, "worker", "-Q", queues, "-c", str(concurrency), "--without-mingle", "--without-gossip",
         "-n", f"{name}@%h", "--loglevel", "WARNING"],
    )  # fmt: skip
    return proc


def db_backends(env: Env) -> list[int]:
    return [pid for (pid,) in env.sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]


def bench_jobs(env: Env, key: str, sim_port: int, rows: int, e2e_rows: int, concurrency: int) -> None:
    env.sql("TRUNCATE messages, message_events, jobs CASCADE")
    import redis

    redis.Redis.from_url(env.env["CELERY_BROKER_URL"]).flushdb()
    path = env.folder / "job.csv"
    size = bench_job.write_csv(path, rows)
    # The job worker alone (no sender): what is measured is the file becoming accepted messages.
    worker = celery_worker(env, "jobs", "jobs", 1)
    beat = env.start("beat-jobs", [str(BIN / "celery"), "-A", "smsqueue.tasks.celery_app", "beat", "-s",
                                   str(env.folder / "beat-jobs"), "--loglevel", "WARNING"])  # fmt: skip
    time.sleep(4)
    with gunicorn(env, "smsqueue.web:create_app()", "web-job") as port:
        web_pid = env.procs[-1].pid  # the gunicorn just started (master and its workers are measured)
        base = f"http://127.0.0.1:{port}"
        r = bench_job.run_job(base, key, path, web_pid, worker.pid, lambda: db_backends(env))
        job = r["job"]
        print(f"\nCSV job, {rows} rows ({size / 2**20:.0f} MiB, `;`, BOM, Cyrillic), 1 job worker process:")
        print(
            f"  {rows / r['seconds']:.0f} rows/s from POST to every row accepted ({r['seconds']:.1f} s; the "
            f"upload took {r['post_seconds']:.1f} s) (target >= 20000)"
        )
        print(
            f"  peak RSS per process: web {r['peak']['web']:.0f} MiB, "
            f"job worker {r['peak']['worker']:.0f} MiB (target < 200)"
        )
        print(
            f"  CPU per row: job worker {r['worker_cpu'] / rows * 1e6:.0f} us, database "
            f"{r['db_cpu'] / rows * 1e6:.0f} us; then GET /api/v1/jobs/{{id}} took "
            f"{r['get_seconds'] * 1000:.0f} ms"
        )
        print(
            f"  job {job['status']}: rows {job['rows']}, accepted {job['accepted']}, "
            f"invalid {job['invalid']}; messages {job['by_status']}"
        )
        if e2e_rows:
            env.sql("TRUNCATE messages, message_events, jobs CASCADE")
            redis.Redis.from_url(env.env["CELERY_BROKER_URL"]).flushdb()
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{sim_port}/_sim/reset", method="POST")
            ).read()
            bench_job.write_csv(path, e2e_rows, offset=rows)
            sender = celery_worker(env, "sender", "send,status,periodic", concurrency)
            time.sleep(4)
            started = time.perf_counter()
            job = bench_job.post_file(base, key, path)
            bench_job.until_done(base, key, job["id"])
            accepted = time.perf_counter() - started
            deadline = time.monotonic() + 900
            while sim_stats(sim_port)["messages"] < e2e_rows and time.monotonic() < deadline:
                if not env.sql("SELECT 1 FROM messages WHERE status IN ('queued', 'sending') LIMIT 1"):
                    break
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
            stats = sim_stats(sim_port)
            statuses = dict(env.sql("SELECT status, count(*) FROM messages GROUP BY status"))
            print(f"\nCSV job end to end, {e2e_rows} rows, job worker + 1 sender x {concurrency} processes:")
            print(
                f"  {stats['messages'] / elapsed:.0f} messages/s from POST to the simulator "
                f"({stats['messages']} received in {elapsed:.1f} s; all rows accepted after {accepted:.1f} s)"
            )
            print(f"  duplicates at the simulator: {stats['duplicate_refs']}; statuses: {statuses}")
            env.stop(sender)
    env.stop(worker)
    env.stop(beat)


def cpu_of_processes() -> dict[int, tuple[int, float]]:
    """pid -> (process group, CPU seconds used so far)."""
    return {int(pid): (int(fields[2]), cpu_seconds(fields)) for pid, _, fields in read_proc()}


def our_cpu(env: Env, groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of our own processes only (a shared machine runs other checkouts' workers and
    databases): each named list of process groups, and "postgres": the backends of our database."""
    procs = cpu_of_processes()
    out = {name: sum(c for g, c in procs.values() if g in set(pgids)) for name, pgids in groups.items()}
    backends = [r[0] for r in env.sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    out["postgres"] = 0.0
    out["postgres_pids"] = {pid: procs[pid][1] for pid in backends if pid in procs}  # type: ignore[assignment]
    return out


def cpu_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds used between two `our_cpu` readings; a backend that began meanwhile counts whole."""
    used = {k: after[k] - before[k] for k in after if k not in ("postgres", "postgres_pids")}
    start = before["postgres_pids"]
    used["postgres"] = sum(c - start.get(pid, 0.0) for pid, c in after["postgres_pids"].items())
    return used


def bench_single_e2e(
    env: Env, key: str, sim_port: int, total: int, workers: int, concurrency: int
) -> dict[str, Any]:
    """Single-message POSTs (16 connections) with the worker running, to the simulator's arrival: the
    figure most callers see, and the one where the worker's cost per message competes with the web."""
    fresh_start(env, sim_port)
    procs = start_workers(env, workers, concurrency)
    with gunicorn(env, "smsqueue.web:create_app()", "web-single") as port:
        groups = {
            "worker": [p.pid for p in procs],
            "web": [p.pid for p in env.procs if str(p.args[0]).endswith("gunicorn")],
        }
        make = single_request(port, "/api/v1/messages", {"Authorization": f"Bearer {key}"})
        before = our_cpu(env, groups)
        started = time.perf_counter()
        r = loadgen.run("127.0.0.1", port, make, concurrency=16, seconds=600, limit=total)
        posted = time.perf_counter() - started
        received = wait_received(env, sim_port, total)
        elapsed = time.perf_counter() - started
        cpu = cpu_between(before, our_cpu(env, groups))
    for proc in procs:
        env.stop(proc)
    out = accounted(env, sim_port, total, received, elapsed, posted)
    out.update(submit_rps=r.rps, errors=r.errors, p50=r.percentile(50), p99=r.percentile(99), cpu=cpu)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of ingest vs baseline")
    parser.add_argument("--e2e-messages", type=int, default=20000)
    parser.add_argument("--e2e-workers", type=int, default=1)
    parser.add_argument("--purge-messages", type=int, default=300_000, help="old messages the purge has")
    parser.add_argument("--metrics-messages", type=int, default=1_000_000, help="rows for the scrape")
    parser.add_argument("--job-rows", type=int, default=1_000_000, help="rows of the CSV job")
    parser.add_argument("--job-e2e-rows", type=int, default=100_000, help="rows of the job sent end to end")
    parser.add_argument(
        "--only", default="ingest,batch,e2e,single_e2e,job,rules", help="also: purge, metrics"
    )
    parser.add_argument("--e2e-concurrency", type=int, default=2)
    parser.add_argument("--single-e2e-messages", type=int, default=10000)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    print(f"smsqueue bench on {os.cpu_count()} cores; gunicorn {' '.join(procfile_web_args())}", flush=True)
    with Env() as env:
        sim_port = free_port()
        env.start(
            "simulator",
            [
                str(BIN / "smsqueue"),
                "simulator",
                "--kind",
                "smsc",
                "--port",
                str(sim_port),
                "--delivery-delay",
                "0.5",
                "--balance",
                "1000000000",
            ],
        )
        wait_port(sim_port)
        key = setup_data(env, f"http://127.0.0.1:{sim_port}")
        if "ingest" in only:
            res = bench_ingest(env, key, args.seconds, args.rounds)
            ours = loadgen.median([r.rps for r in res["ours"]])
            base = loadgen.median([r.rps for r in res["baseline"]])
            print("\nsingle-message ingest, concurrency 16 (median of rounds):")
            for i, (o, b) in enumerate(zip(res["ours"], res["baseline"], strict=True), 1):
                print(f"  round {i}  smsqueue {o.summary()}")
                print(f"                    {cpu_per_request(o)}")
                print(f"           baseline {b.summary()}")
                print(f"                    {cpu_per_request(b)}")
            print(
                f"  smsqueue {ours:.0f} req/s vs baseline {base:.0f} req/s: ratio {ours / base:.2f} "
                "(target >= 0.70)"
            )
        if "batch" in only:
            r = bench_batch(env, key, args.seconds)
            print("\nbatch ingest, 1000-message batches, 4 connections:")
            p50, p99 = r.percentile(50) * 1000, r.percentile(99) * 1000
            print(
                f"  {r.rps * 1000:.0f} messages/s ({r.rps:.1f} batches/s, p50 {p50:.0f} ms, "
                f"p99 {p99:.0f} ms, "
                f"{r.errors} errors) (target >= 10000)"
            )
        if "e2e" in only:
            r = bench_e2e(env, key, sim_port, args.e2e_messages, args.e2e_workers, args.e2e_concurrency)
            ok = r["received"] == r["total"] and not r["duplicates"]
            print(
                f"\nend to end, {r['total']} messages posted in 1000-message batches, "
                f"{args.e2e_workers} worker x {args.e2e_concurrency} processes:"
            )
            print(
                f"  {r['rate']:.0f} messages/s from first POST to the simulator ({r['received']} received in "
                f"{r['seconds']:.1f} s; posting took {r['post_seconds']:.1f} s) (target >= 500)"
            )
            print(
                f"  accounted for: {'yes' if ok else 'NO'}; duplicates at the simulator: {r['duplicates']}; "
                f"statuses: {r['statuses']}"
            )
        if "purge" in only:
            bench_ops.report_purge(
                bench_ops.bench_purge(env, gunicorn, single_request, key, args.seconds, args.purge_messages)
            )
        if "metrics" in only:
            bench_ops.report_metrics(bench_ops.bench_metrics(env, gunicorn, args.metrics_messages))
        if "job" in only:
            bench_jobs(env, key, sim_port, args.job_rows, args.job_e2e_rows, args.e2e_concurrency)
        if "single_e2e" in only:
            r = bench_single_e2e(
                env, key, sim_port, args.single_e2e_messages, args.e2e_workers, args.e2e_concurrency
            )
            ok = r["received"] == r["total"] and not r["duplicates"]
            print(
                f"\nend to end, {r['total']} single-message POSTs on 16 connections, "
                f"{args.e2e_workers} worker x {args.e2e_concurrency} processes running:"
            )
            print(
                f"  submit {r['submit_rps']:.0f} req/s (p50 {r['p50'] * 1000:.1f} ms, "
                f"p99 {r['p99'] * 1000:.1f} ms, {r['errors']} errors); "
                f"{r['rate']:.0f} messages/s from first POST to the simulator "
                f"(drain after the last POST {r['seconds'] - r['post_seconds']:.1f} s)"
            )
            per = ", ".join(f"{k} {v / max(r['received'], 1) * 1e6:.0f}" for k, v in r["cpu"].items())
            print(f"  CPU us/message: {per}")
            print(
                f"  accounted for: {'yes' if ok else 'NO'}; duplicates at the simulator: {r['duplicates']}; "
                f"statuses: {r['statuses']}"
            )
    if "rules" in only and (HERE / "bench_rules.py").exists():
        print(flush=True)
        subprocess.run([sys.executable, str(HERE / "bench_rules.py")], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
