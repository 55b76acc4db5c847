"""Operations figures for bench/run.py: the retention purge beside a sending load, and the cost of a
/metrics scrape with many messages.

- purge: old delivered messages (with one event each) are seeded with generate_series; single-message
  ingest (concurrency 16) is measured alone, then with a purge process running beside it, then alone
  again, in the same run. Reported: purged messages/s, and ingest with the purge / ingest alone.
- metrics: with N messages seeded, the scrape of GET /metrics (which reads counters) against what the
  old scrape ran (COUNT(*) over messages, by status), both timed here on the same rows.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import loadgen

SEED = """
INSERT INTO messages (id, legal_entity_id, recipient, text, status, segments, encoding, attempts,
                      status_checks, event_seq, created_at, updated_at)
SELECT gen_random_uuid(), e.id, '+7916' || lpad((g % 10000000)::text, 7, '0'), 'Old message ' || g,
       '{status}', 1, 'GSM7', 1, 0, 1, now() - interval '{age}', now() - interval '{age}'
FROM generate_series(1, {count}) AS g, legal_entities e WHERE e.code = 'bench';
INSERT INTO message_events (message_pk, seq, status, at, webhook_attempts)
SELECT pk, 1, status, updated_at, 0 FROM messages m
WHERE m.updated_at < now() - interval '{age}' + interval '1 minute'
  AND NOT EXISTS (SELECT 1 FROM message_events v WHERE v.message_pk = m.pk);
ANALYZE messages; ANALYZE message_events;
"""

PURGE = """
import json, sys, time
from smsqueue import retention
from smsqueue.config import settings
t = time.monotonic()
n = retention.purge(budget_seconds=float(sys.argv[1]), pause=settings().purge_pause)
print(json.dumps({"purged": n, "seconds": time.monotonic() - t}))
"""


def seed(env: Any, count: int, status: str = "delivered", age: str = "600 days") -> float:
    started = time.monotonic()
    env.sql(SEED.format(count=count, status=status, age=age))
    return time.monotonic() - started


def bench_purge(
    env: Any, gunicorn: Any, single_request: Any, key: str, seconds: float, count: int, rounds: int = 3
) -> dict:
    """Rounds of ingest alone and ingest beside a purge process alternate (alone first and last), so a
    noisy neighbour on the machine hurts both alike; medians are compared."""
    seeded = seed(env, count)
    alone, beside, purged, purge_seconds = [], [], 0, 0.0
    with gunicorn(env, "smsqueue.web:create_app()", "web-purge") as port:
        make = single_request(port, "/api/v1/messages", {"Authorization": f"Bearer {key}"})
        loadgen.run("127.0.0.1", port, make, seconds=2)  # warm up
        alone.append(loadgen.run("127.0.0.1", port, make, concurrency=16, seconds=seconds))
        for _ in range(rounds):
            purge = subprocess.Popen(
                [sys.executable, "-c", PURGE, str(seconds)], env=env.env, stdout=subprocess.PIPE, text=True
            )
            beside.append(loadgen.run("127.0.0.1", port, make, concurrency=16, seconds=seconds))
            out, _ = purge.communicate(timeout=seconds + 120)
            run = json.loads(out.strip().splitlines()[-1])
            purged += run["purged"]
            purge_seconds += run["seconds"]
            alone.append(loadgen.run("127.0.0.1", port, make, concurrency=16, seconds=seconds))
    return {
        "seeded": count,
        "seed_seconds": seeded,
        "purged": purged,
        "purge_seconds": purge_seconds,
        "alone_rps": statistics.median(r.rps for r in alone),
        "beside_rps": statistics.median(r.rps for r in beside),
        "rounds": [(round(a.rps), round(b.rps)) for a, b in zip(alone, beside, strict=False)],
        "errors": sum(r.errors for r in alone + beside),
        "pause": env.env.get("SMSQUEUE_PURGE_PAUSE", "0.25 (the default)"),
    }


def _scrape(url: str) -> tuple[float, int]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as answer:
        body = answer.read()
    return time.monotonic() - started, len(body)


def _timed_sql(env: Any, sql: str) -> float:
    started = time.monotonic()
    env.sql(sql)
    return time.monotonic() - started


OLD_SCRAPE = "SELECT status, count(*) FROM messages GROUP BY status"


def bench_metrics(env: Any, gunicorn: Any, count: int, repeats: int = 21) -> dict:
    rows = env.sql("SELECT count(*) FROM messages")[0][0]
    with gunicorn(env, "smsqueue.web:create_app()", "web-metrics") as port:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(3):
            _scrape(url)
        small = [_scrape(url)[0] for _ in range(repeats)]
        small_old = [_timed_sql(env, OLD_SCRAPE) for _ in range(repeats)]
        seeded = seed(env, count, age="1 day")
        for _ in range(3):  # each of the 4 web processes reads the (moved) index pages once
            _scrape(url)
        big = [_scrape(url)[0] for _ in range(repeats)]
        big_old = [_timed_sql(env, OLD_SCRAPE) for _ in range(repeats)]
    return {
        "rows_before": rows,
        "rows_after": rows + count,
        "seed_seconds": seeded,
        "scrape_small": statistics.median(small),
        "scrape_big": statistics.median(big),
        "old_small": statistics.median(small_old),
        "old_big": statistics.median(big_old),
    }


def report_purge(r: dict) -> None:
    rate = r["purged"] / max(r["purge_seconds"], 1e-9)
    print(
        f"\nretention purge beside single-message ingest (concurrency 16), {r['seeded']} old messages, "
        f"batches of 500, {r['pause']} s between batches:"
    )
    print(
        f"  purged {r['purged']} messages (with their events) in {r['purge_seconds']:.1f} s: "
        f"{rate:.0f} messages/s"
    )
    print(
        f"  ingest with the purge {r['beside_rps']:.0f} req/s vs alone {r['alone_rps']:.0f} req/s: "
        f"ratio {r['beside_rps'] / r['alone_rps']:.2f} (medians; {r['errors']} errors)"
    )
    print(f"  rounds (alone, beside): {r['rounds']}")


def report_metrics(r: dict) -> None:
    print(f"\n/metrics scrape, {r['rows_before']} then {r['rows_after']} messages (median of 21):")
    print(f"  GET /metrics: {r['scrape_small'] * 1000:.1f} ms, then {r['scrape_big'] * 1000:.1f} ms")
    print(
        f"  the old scrape's COUNT(*) by status: {r['old_small'] * 1000:.1f} ms, "
        f"then {r['old_big'] * 1000:.1f} ms"
    )
