"""GET /api/v1/messages?updated_after=...: polling with the returned cursor sees every change once, never
skipped and never repeated, while writers change messages concurrently and commit late or roll back.

The same scenario runs on PostgreSQL (this session's database) and on SQLite (a subprocess with its own
database file, migrated by Alembic)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.messages import NewMessage, insert_messages, transition
from smsqueue.models import Message
from smsqueue.statuses import Status

PATH = [Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]


def new_message(conn: Any, entity_id: int) -> tuple[int, str]:
    item = NewMessage(
        id=uuid.uuid4(), legal_entity_id=entity_id, to="+79161234567", text="x", segments=1, encoding="GSM-7"
    )
    (moved,) = insert_messages(conn, [item])
    return moved.pk, str(moved.id)


class Rollback(Exception):
    pass


class Ledger:
    """The changes the writers committed, and those they rolled back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: list[tuple[str, str]] = []
        self.aborted: list[tuple[str, str]] = []
        self.final: dict[str, str] = {}

    def commit(self, changes: list[tuple[str, str]]) -> None:
        with self.lock:
            self.made += changes
            for mid, status in changes:
                self.final[mid] = status


def writer(
    seed: int,
    entity_id: int,
    own: dict[str, tuple[int, int]],
    once: list[tuple[int, str]],
    ledger: Ledger,
    until: float,
) -> None:
    """Advance its own messages along PATH, create new ones, and move each of `once` one step exactly;
    each transaction holds its changes a random while before committing (late commits), and some roll
    back."""
    rng = random.Random(seed)
    while time.monotonic() < until or once:
        changes: list[tuple[str, str]] = []
        planned: dict[str, tuple[int, int]] = {}
        single = once[-1] if once else None
        try:
            with transaction() as conn:
                if single is not None:
                    assert transition(conn, single[0], Status.SENDING, expected={Status.QUEUED}) is not None
                    changes.append((single[1], Status.SENDING.value))
                if rng.random() < 0.25:
                    for _ in range(rng.randint(1, 3)):
                        pk, mid = new_message(conn, entity_id)
                        planned[mid] = (pk, 0)
                        changes.append((mid, Status.QUEUED.value))
                movable = [mid for mid, (_, step) in own.items() if step < len(PATH) - 1]
                for mid in rng.sample(movable, min(len(movable), rng.randint(1, 3))):
                    pk, step = own[mid]
                    moved = transition(conn, pk, PATH[step + 1], expected={PATH[step]})
                    assert moved is not None
                    planned[mid] = (pk, step + 1)
                    changes.append((mid, PATH[step + 1].value))
                time.sleep(rng.uniform(0, 0.04))
                if rng.random() < 0.1:
                    raise Rollback
        except Rollback:
            with ledger.lock:
                ledger.aborted += changes
            continue
        if single is not None:
            once.pop()
        own.update(planned)
        ledger.commit(changes)
        time.sleep(rng.uniform(0, 0.01))


def poll(
    client: Any, headers: dict[str, str], since: str, cursor: str | None, limit: int
) -> tuple[list, str]:
    params: dict[str, Any] = {"updated_after": since, "limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    r = client.get("/api/v1/messages", query_string=params, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["next_cursor"], "with updated_after, next_cursor is never null"
    return body["items"], body["next_cursor"]


def run_scenario(
    client: Any, headers: dict[str, str], entity_id: int, *, seconds: float = 3.0
) -> dict[str, int]:
    """Writers change messages while a poller follows the changes; the poller must see each committed
    change at most once, the last change of every message, and every change of messages changed once."""
    with transaction() as conn:
        before = [new_message(conn, entity_id) for _ in range(40)]
        singles = [new_message(conn, entity_id) for _ in range(20)]
    since = now() + timedelta(milliseconds=5)
    time.sleep(0.02)
    ledger = Ledger()
    owned: list[dict[str, tuple[int, int]]] = [{} for _ in range(4)]
    for i, (pk, mid) in enumerate(before):
        owned[i % 4][mid] = (pk, 0)
    once: list[list[tuple[int, str]]] = [singles[i::4] for i in range(4)]
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=writer, args=(i, entity_id, owned[i], once[i], ledger, until), daemon=True)
        for i in range(4)
    ]
    for t in threads:
        t.start()
    seen: list[tuple[str, str]] = []
    cursor = None
    polls = 0
    while any(t.is_alive() for t in threads):
        items, cursor = poll(client, headers, since.isoformat(), cursor, limit=7)
        seen += [(item["id"], item["status"]) for item in items]
        polls += 1
    for t in threads:
        t.join()
    joined = time.monotonic()
    # Drain: until the last change of every message has been listed (a horizon may lag a moment).
    deadline = time.monotonic() + 30
    while True:
        items, cursor = poll(client, headers, since.isoformat(), cursor, limit=7)
        seen += [(item["id"], item["status"]) for item in items]
        polls += 1
        last = {}
        for mid, status in seen:
            last[mid] = status
        if last == ledger.final or time.monotonic() > deadline:
            break
        if not items:
            time.sleep(0.05)
    drained = time.monotonic()
    for _ in range(3):  # nothing more comes
        items, cursor = poll(client, headers, since.isoformat(), cursor, limit=50)
        assert items == []

    made = set(ledger.made)
    assert len(made) == len(ledger.made)  # each change (message, status) happens once on PATH
    counts = defaultdict(int)
    for change in seen:
        counts[change] += 1
    assert {c: n for c, n in counts.items() if n > 1} == {}, "a change was listed twice"
    assert set(seen) <= made, f"listed changes nobody committed: {set(seen) - made}"
    assert not set(seen) & (set(ledger.aborted) - made), "listed a change that was rolled back"
    # Per message, changes come in the order they were made, ending with its last one.
    by_message: dict[str, list[str]] = defaultdict(list)
    for mid, status in seen:
        by_message[mid].append(status)
    order = {s.value: i for i, s in enumerate(PATH)}
    for mid, statuses in by_message.items():
        assert statuses == sorted(statuses, key=order.__getitem__), (mid, statuses)
    assert {mid: statuses[-1] for mid, statuses in by_message.items()} == ledger.final
    # Messages changed exactly once since `since`: that very change, once.
    changed: dict[str, list[str]] = defaultdict(list)
    for mid, status in ledger.made:
        changed[mid].append(status)
    changed_once = {(mid, s[0]) for mid, s in changed.items() if len(s) == 1}
    assert {(mid, "sending") for _, mid in singles} <= changed_once
    assert changed_once <= set(seen)
    return {
        "made": len(made), "seen": len(seen), "polls": polls, "aborted": len(ledger.aborted),
        "drain_seconds": round(drained - joined, 2),
    }  # fmt: skip


# --- PostgreSQL ---------------------------------------------------------------------------------------


def test_polling_sees_every_change_once_while_messages_change(client, factory):
    entity = factory.entity()
    stats = run_scenario(client, factory.headers(entity), entity.id)
    print(stats)
    assert stats["made"] > 100 and stats["polls"] > 20 and stats["aborted"] > 0, stats


def old_transactions(seconds: float = 5.0) -> list[tuple]:
    """Transactions of the cluster open longer than this: what holds the horizon back (any database's,
    since pg_snapshot_xmin is the cluster's), for a failure message."""
    with transaction() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT datname, pid, application_name, state, now() - xact_start, left(query, 120) "
                    "FROM pg_stat_activity WHERE xact_start < now() - make_interval(secs => :s) "
                    "AND pid <> pg_backend_pid()"
                ),
                {"s": seconds},
            )
        ]


def follow(
    client: Any, headers: dict[str, str], since: str, cursor: str | None, want: int, timeout: float = 20
) -> tuple[list[tuple[str, str]], str]:
    """Poll until `want` changes were listed (a horizon may lag behind other transactions), then a few
    times more: everything listed, and the cursor."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        items, cursor = poll(client, headers, since, cursor, 10)
        seen += [(i["id"], i["status"]) for i in items]
        if not items:
            time.sleep(0.05)
    for _ in range(3):
        items, cursor = poll(client, headers, since, cursor, 10)
        seen += [(i["id"], i["status"]) for i in items]
    assert cursor is not None
    assert len(seen) >= want, ("the horizon did not pass", old_transactions())
    return seen, cursor


def test_a_change_committed_late_is_not_skipped(client, factory):
    """A transaction stamps a change and commits seconds after a later-stamped change committed and was
    polled for: the poller still gets it, once (a time-lag design would have skipped it)."""
    entity = factory.entity()
    headers = factory.headers(entity)
    with transaction() as conn:
        (a_pk, a_id), (b_pk, b_id), (c_pk, _) = (new_message(conn, entity.id) for _ in range(3))
    since = now().isoformat()
    time.sleep(0.01)
    _, cursor = poll(client, headers, since, None, 10)
    seen: list[tuple[str, str]] = []
    started, go = threading.Event(), threading.Event()

    def late() -> None:
        with transaction() as conn:
            # The transaction gets its id first (a write that is not a change: no new position)...
            conn.execute(Message.__table__.update().where(Message.pk == c_pk).values(next_attempt_at=now()))
            started.set()
            go.wait(10)
            # ... and stamps its change only after B's was committed and polled for.
            transition(conn, a_pk, Status.SENDING, expected={Status.QUEUED})
            time.sleep(2.5)

    thread = threading.Thread(target=late)
    thread.start()
    assert started.wait(5)
    with transaction() as conn:
        transition(conn, b_pk, Status.SENDING, expected={Status.QUEUED})
    go.set()
    while thread.is_alive():
        items, cursor = poll(client, headers, since, cursor, 10)
        seen += [(i["id"], i["status"]) for i in items]
        time.sleep(0.2)
    thread.join()
    more, _ = follow(client, headers, since, cursor, 2 - len(seen))
    assert sorted(seen + more) == sorted([(a_id, "sending"), (b_id, "sending")])


def test_cursor_rules(client, factory):
    entity = factory.entity()
    headers = factory.headers(entity)
    since = (now() - timedelta(minutes=1)).isoformat()
    r = client.get(
        "/api/v1/messages", query_string={"updated_after": since, "cursor": "nonsense"}, headers=headers
    )
    assert r.status_code == 422
    assert r.get_json()["errors"][0] == {
        "field": "cursor", "code": "invalid_cursor", "message": "not a cursor from this listing"
    }  # fmt: skip
    with transaction() as conn:
        _, first = new_message(conn, entity.id)
    seen, cursor = poll(client, headers, since, None, 10)
    # Polling goes on with the returned cursor alone (API.md): the cursor holds the position.
    with transaction() as conn:
        _, second = new_message(conn, entity.id)
    # A change shows once every older transaction of the cluster has ended (below pg_snapshot_xmin):
    # on a busy server that can take a moment, so the poll goes on with the same cursor until it does.
    deadline = time.monotonic() + 60
    while True:
        r = client.get("/api/v1/messages", query_string={"cursor": cursor}, headers=headers)
        assert r.status_code == 200
        body = r.get_json()
        if body["items"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [x["id"] for x in body["items"]] == [second] and body["next_cursor"], old_transactions()
    assert first in [x["id"] for x in seen]
    # A created-order cursor is not a changes cursor.
    with transaction() as conn:
        for _ in range(3):
            new_message(conn, entity.id)
    page = client.get("/api/v1/messages", query_string={"limit": 1}, headers=headers).get_json()
    r = client.get(
        "/api/v1/messages",
        query_string={"updated_after": since, "cursor": page["next_cursor"]},
        headers=headers,
    )
    assert r.status_code == 422
    # Never null, even for an entity the key cannot see.
    admin = factory.headers()
    r = client.get(
        "/api/v1/messages", query_string={"updated_after": since, "legal_entity": "nope"}, headers=admin
    )
    assert r.status_code == 200 and r.get_json()["next_cursor"]


def test_other_updates_of_a_message_do_not_list_it_again(client, factory):
    """Only status changes move a message's position: sweeps touching other columns repeat nothing."""
    entity = factory.entity()
    headers = factory.headers(entity)
    since = (now() - timedelta(milliseconds=1)).isoformat()  # updated_after is exclusive
    with transaction() as conn:
        pk, mid = new_message(conn, entity.id)
    seen, cursor = follow(client, headers, since, None, 1)
    assert seen == [(mid, "queued")]
    with transaction() as conn:
        conn.execute(
            Message.__table__.update().where(Message.pk == pk).values(next_attempt_at=now(), attempts=2)
        )
        transition(conn, pk, Status.SENDING, expected={Status.QUEUED})
    with transaction() as conn:
        conn.execute(
            Message.__table__.update().where(Message.pk == pk).values(next_attempt_at=now(), attempts=3)
        )
    seen, _ = follow(client, headers, since, cursor, 1)
    assert seen == [(mid, "sending")]


# --- SQLite -------------------------------------------------------------------------------------------


def test_polling_sees_every_change_once_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'smsqueue.db'}",
        SMSQUEUE_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(Path(__file__).parent),
    )
    proc = subprocess.run(
        [sys.executable, __file__, "sqlite-scenario"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "scenario ok" in proc.stdout


def _sqlite_main() -> None:
    from smsqueue.auth import ENTITY, create_key
    from smsqueue.cli import db_upgrade
    from smsqueue.db import session_scope
    from smsqueue.rules import admin
    from smsqueue.web import create_app

    assert os.environ["DATABASE_URL"].startswith("sqlite")
    db_upgrade()
    with session_scope() as session:
        entity, _ = admin.create_entity(session, code="acme")
        key = create_key(session, ENTITY, ["acme"])
    client = create_app().test_client()
    stats = run_scenario(client, {"Authorization": f"Bearer {key}"}, entity.id, seconds=2.5)
    assert stats["made"] > 50, stats
    print("scenario ok", stats)


if __name__ == "__main__" and sys.argv[1:] == ["sqlite-scenario"]:
    _sqlite_main()
