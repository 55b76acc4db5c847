"""The first page of GET /api/v1/messages?updated_after=... (no cursor) starts where the changes after
that time begin, found through an index, not by walking the whole history from its first position.

Checked with EXPLAIN ANALYZE of the very statements the API runs (captured from the engine) on this
session's PostgreSQL: no sequential scan of messages, and only a few index entries read, with a long
history before `updated_after`. And the boundary: `updated_after` is exclusive, and a message made long
ago but changed since is on the first page."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, text

from smsqueue.clock import iso, now
from smsqueue.db import get_engine, transaction
from smsqueue.messages import messages_t, transition
from smsqueue.statuses import Status

HISTORY = 20_000  # old messages before updated_after
BATCHES = 40  # written by this many transactions (so they hold this many change positions)


def old_history(entity_id: int, at: Any) -> None:
    """HISTORY delivered messages, all last changed at `at`."""
    per = HISTORY // BATCHES
    for _ in range(BATCHES):
        rows = [
            {
                "id": uuid.uuid4(),
                "legal_entity_id": entity_id,
                "recipient": "+79161234567",
                "text": "old",
                "status": Status.DELIVERED.value,
                "segments": 1,
                "encoding": "GSM-7",
                "attempts": 1,
                "status_checks": 0,
                "event_seq": 4,
                "created_at": at,
                "updated_at": at,
            }
            for _ in range(per)
        ]
        with transaction() as conn:
            conn.execute(insert(messages_t), rows)
    with transaction() as conn:
        conn.execute(text("ANALYZE messages"))


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs on messages run while the block runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM messages" in statement:
            seen.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def explain(statement: str, parameters: Any) -> list[dict[str, Any]]:
    with transaction() as conn:
        raw = conn.connection.dbapi_connection.cursor()
        raw.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        (document,) = raw.fetchone()
    document = json.loads(document) if isinstance(document, str) else document
    return list(plan_nodes(document[0]["Plan"]))


def poll(client: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/messages", query_string=params, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def follow(client: Any, headers: dict[str, str], want: int, **params: Any) -> tuple[list[str], str]:
    """Poll on from `params` until `want` messages were listed, then once more: the ids in the order
    listed, and the cursor. (The horizon may lag: the PostgreSQL server is shared with other sessions,
    whose open transactions hold back what is final.)"""
    listed: list[str] = []
    deadline = time.monotonic() + 20
    while True:
        body = poll(client, headers, **params)
        listed += [x["id"] for x in body["items"]]
        params["cursor"] = body["next_cursor"]
        if len(listed) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    body = poll(client, headers, **params)
    return listed + [x["id"] for x in body["items"]], body["next_cursor"]


def recent(entity_id: int, at: datetime | None = None) -> tuple[str, str]:
    """One message changed long after the history: made now, then moved on (now, or `at`)."""
    from test_updated_after import new_message

    with transaction() as conn:
        pk, mid = new_message(conn, entity_id)
    with transaction() as conn:
        transition(conn, pk, Status.SENDING, expected={Status.QUEUED}, at=at)
    return pk, mid


def test_the_first_page_starts_through_an_index_not_a_walk_of_the_history(client, factory):
    entity = factory.entity()
    headers = factory.headers(entity)
    old_history(entity.id, now() - timedelta(days=3))
    since = iso(now() - timedelta(hours=1))
    _, mid = recent(entity.id)

    for who in (headers, factory.headers()):  # an entity's key, and the admin's (no entity filter)
        deadline = time.monotonic() + 20
        while True:  # until the change is final for this poll's horizon (see follow)
            with statements() as seen:
                body = poll(client, who, updated_after=since, limit=10)
            if body["items"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [(x["id"], x["status"]) for x in body["items"]] == [(mid, "sending")]
        assert seen, "the listing ran no SELECT on messages"
        for statement, parameters in seen:
            nodes = explain(statement, parameters)
            scans = [n for n in nodes if n.get("Relation Name") == "messages"]
            assert scans, statement
            assert all(n["Node Type"] != "Seq Scan" for n in scans), (statement, scans)
            # Rows read: those returned and those an index scan read only to filter out.
            read = sum(
                n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0) for n in scans
            )
            assert read < 100, (statement, [(n["Node Type"], n.get("Index Name"), read) for n in scans])


def test_the_first_page_at_its_boundary(client, factory):
    """Exclusive at updated_after; a message made long before it but changed after it is listed; one
    changed exactly at it, or before, is not; the cursor then goes on from there."""
    from test_updated_after import new_message

    entity = factory.entity()
    headers = factory.headers(entity)
    old_history(entity.id, now() - timedelta(days=3))
    with transaction() as conn:
        made_long_ago, long_ago_id = new_message(conn, entity.id)
        at_the_boundary, _ = new_message(conn, entity.id)
    boundary = now() + timedelta(seconds=1)
    with transaction() as conn:
        transition(conn, at_the_boundary, Status.SENDING, expected={Status.QUEUED}, at=boundary)
    with transaction() as conn:
        transition(
            conn,
            made_long_ago,
            Status.SENDING,
            expected={Status.QUEUED},
            at=boundary + timedelta(milliseconds=1),
        )
    _, fresh_id = recent(entity.id, at=boundary + timedelta(milliseconds=2))

    listed, _ = follow(client, headers, 2, updated_after=iso(boundary), limit=1)
    assert listed == [long_ago_id, fresh_id]  # in the order they changed; the boundary's one is not
    # Nothing changed after it: an empty first page, and a cursor that sees the next change.
    body = poll(client, headers, updated_after=iso(now() + timedelta(seconds=5)), limit=10)
    assert body["items"] == []
    _, later_id = recent(entity.id)
    listed, _ = follow(client, headers, 1, limit=10, cursor=body["next_cursor"])
    assert listed == [later_id]
