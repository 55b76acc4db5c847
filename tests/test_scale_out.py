"""Scale-out: two web processes, two workers and two beats (their own schedule files) on one PostgreSQL
and one Redis. 2,000 messages through both webs: each reaches the provider exactly once, the 230-FZ
daily limit holds across processes, and the two beats' sweeps do no double work that shows (no second
send, no repeated status event)."""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from conftest import wait_for
from sqlalchemy import func, select
from test_resilience import all_final, refs_received, status_counts

from smsqueue.db import transaction
from smsqueue.models import MessageEvent

pytestmark = pytest.mark.pipeline
PLAIN = 1800  # messages of an entity without the FZ rules, each to its own number
FZ_NUMBERS, FZ_EACH, PER_DAY = 50, 4, 2  # an FZ entity sends 4 to each of 50 numbers, 2 a day allowed


def midday_zone() -> str:
    """A fixed-offset zone where it is about 13:00 now, so the FZ hours (weekday 08-22, weekend 09-20)
    allow sending whatever the hour of the run."""
    offset = 13 - datetime.now(UTC).hour  # hours east of UTC
    offset = max(-12, min(14, offset))
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/ signs are inverted


def test_two_of_each_process_send_each_message_once_and_hold_the_fz_limits(processes, factory, simulator):
    provider = factory.provider(simulator.url)
    plain = factory.entity(provider)
    fz = factory.entity(
        provider, fz_enabled=True, fz_per_day=PER_DAY, fz_per_week=10, fz_per_month=20, fz_on_limit="reject"
    )
    plain_key, fz_key = factory.key(plain), factory.key(fz)
    for _ in range(2):
        processes.worker(concurrency=2)
        processes.beat()
    webs = [processes.web()[1] for _ in range(2)]

    zone = midday_zone()
    plain_items = [{"to": f"+7916{i:07d}", "text": f"plain {i}"} for i in range(PLAIN)]
    fz_items = [
        {"to": f"+7903{n:07d}", "text": f"fz {n}/{k}", "recipient_timezone": zone}
        for k in range(FZ_EACH)
        for n in range(FZ_NUMBERS)
    ]
    batches = [(plain_key, plain_items[i : i + 100]) for i in range(0, PLAIN, 100)]
    batches += [(fz_key, fz_items[i : i + 50]) for i in range(0, len(fz_items), 50)]
    web_of = itertools.cycle(webs)
    jobs = [(next(web_of), key, items) for key, items in batches]

    def post(job: tuple[str, str, list[dict]]) -> list[dict]:
        web, key, items = job
        answer = requests.post(
            f"{web}/api/v1/messages/batch",
            json={"messages": items},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]

    with ThreadPoolExecutor(4) as pool:
        results = [r for rs in pool.map(post, jobs) for r in rs]
    assert len(results) == PLAIN + FZ_NUMBERS * FZ_EACH and all("id" in r for r in results)

    wait_for(lambda: all_final(plain.id, PLAIN) or None, 240, 0.5, "the plain entity's messages final")
    wait_for(lambda: all_final(fz.id, FZ_NUMBERS * FZ_EACH) or None, 120, 0.5, "the FZ entity's final")
    assert status_counts(plain.id) == Counter({"delivered": PLAIN})
    fz_counts = status_counts(fz.id)
    assert fz_counts == Counter(
        {"delivered": FZ_NUMBERS * PER_DAY, "rejected": FZ_NUMBERS * (FZ_EACH - PER_DAY)}
    )

    received = simulator.received()
    refs = refs_received(simulator)
    assert len(received) == PLAIN + FZ_NUMBERS * PER_DAY
    assert max(refs.values()) == 1, [r for r, n in refs.items() if n > 1][:10]  # each sent exactly once
    per_number = Counter(m.phone.lstrip("+") for m in received if m.phone.lstrip("+").startswith("7903"))
    assert len(per_number) == FZ_NUMBERS and max(per_number.values()) == PER_DAY

    with transaction() as conn:  # no status recorded twice for a message (two sweeps acting on one row)
        repeated = conn.execute(
            select(MessageEvent.message_pk, MessageEvent.status)
            .group_by(MessageEvent.message_pk, MessageEvent.status)
            .having(func.count() > 1)
        ).all()
    assert repeated == []
