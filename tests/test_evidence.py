"""Evidence (API.md "Evidence"): the decision of the sender's rules step and the counts it saw are
recorded when it is made, and one debtor's or number's history reads them back, as JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from smsqueue.db import transaction
from smsqueue.messages import Followups, NewMessage, insert_messages
from smsqueue.sending import claim

BASE = "/api/v1/legal-entities"
PHONE = "+79161234567"
OTHER = "+79161234568"
OPEN = {"from": "00:00", "to": "24:00"}


@pytest.fixture
def admin(factory):
    return factory.headers()


def queue(entity_id: int, to: str, text: str, debtor: str | None = None) -> int:
    new = NewMessage(
        id=uuid.uuid4(),
        legal_entity_id=entity_id,
        to=to,
        text=text,
        segments=1,
        encoding="GSM-7",
        debtor=debtor,
    )
    with transaction() as conn:
        (moved,) = insert_messages(conn, [new])
    return moved.pk


def claim_one(pk: int) -> None:
    with transaction() as conn:
        claim(conn, [pk], datetime.now(UTC), Followups())


@pytest.fixture
def acme(factory):
    provider = factory.provider(code="sim")
    return factory.entity(
        provider,
        code="acme",
        fz_enabled=True,
        fz_weekday_from="00:00",
        fz_weekday_to="24:00",
        fz_weekend_from="00:00",
        fz_weekend_to="24:00",
    )


def test_each_decision_keeps_the_counts_it_saw_and_the_history_shows_them(client, admin, acme):
    pks = [queue(acme.id, PHONE, f"m{i}", debtor="D-1") for i in range(3)]
    for pk in pks:
        claim_one(pk)  # one at a time: each sees the ones before it counted
    assert (
        client.put(
            f"{BASE}/acme/stop-list/debtors/D-1", json={"reason": "refused"}, headers=admin
        ).status_code
        == 201
    )
    stopped = queue(acme.id, OTHER, "after the refusal", debtor="D-1")
    claim_one(stopped)
    queue(acme.id, OTHER, "someone else's")

    r = client.get(f"{BASE}/acme/debtors/D-1/history", headers=admin)
    assert r.status_code == 200, r.json
    assert (r.json["legal_entity"], r.json["debtor"], r.json["interactions"]) == ("acme", "D-1", [])
    items = r.json["items"]
    assert [i["text"] for i in items] == ["m0", "m1", "m2", "after the refusal"]  # oldest first, both numbers
    assert [i["to"] for i in items] == [PHONE, PHONE, PHONE, OTHER]
    seen = [(d["outcome"], d["reasons"], d["counts"]) for i in items for d in i["decisions"]]
    assert seen == [
        ("allowed", [], {"day": 0, "week": 0, "month": 0}),
        ("allowed", [], {"day": 1, "week": 1, "month": 1}),
        ("rejected", ["fz_daily_limit"], {"day": 2, "week": 2, "month": 2}),
        ("rejected", ["stop_list"], None),
    ]
    assert [(e["status"], e["reason"]) for e in items[2]["events"]] == [
        ("queued", None),
        ("rejected", "fz_daily_limit"),
    ]
    assert [e["status"] for e in items[0]["events"]] == ["queued", "sending"]
    assert set(items[0]) >= {
        "id",
        "to",
        "text",
        "sender",
        "provider",
        "provider_message_id",
        "events",
        "decisions",
    }

    by_number = client.get(f"{BASE}/acme/numbers/8 916 123 45 68/history", headers=admin).json
    assert (by_number["to"], [i["text"] for i in by_number["items"]]) == (
        OTHER,
        ["after the refusal", "someone else's"],
    )
    assert by_number["items"][1]["decisions"] == []  # never taken by a worker: nothing decided yet


def test_the_same_history_as_csv(client, admin, acme):
    for i in range(2):
        claim_one(queue(acme.id, PHONE, f"line {i}, with a comma\nand a newline", debtor="D-2"))
    r = client.get(f"{BASE}/acme/debtors/D-2/history", headers={**admin, "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["text"] for row in rows] == [
        "line 0, with a comma\nand a newline",
        "line 1, with a comma\nand a newline",
    ]
    assert [(row["decision"], row["counts_day"], row["debtor"], row["to"]) for row in rows] == [
        ("allowed", "0", "D-2", PHONE),
        ("allowed", "1", "D-2", PHONE),
    ]
    assert rows[0]["events"].count("queued") == 1 and "sending" in rows[0]["events"]
    json_by_default = client.get(f"{BASE}/acme/debtors/D-2/history", headers={**admin, "Accept": "*/*"})
    assert json_by_default.mimetype == "application/json"


def test_history_errors(client, admin, factory, acme):
    r = client.get(f"{BASE}/acme/numbers/12345/history", headers=admin)
    assert (r.status_code, r.json["errors"][0]["field"], r.json["errors"][0]["code"]) == (
        422,
        "number",
        "invalid_phone",
    )
    r = client.get(f"{BASE}/acme/debtors/{'d' * 129}/history", headers=admin)
    assert (r.status_code, r.json["errors"][0]["code"]) == (422, "too_long")
    r = client.get(f"{BASE}/nobody/debtors/D/history", headers=admin)
    assert (r.status_code, r.json["code"]) == (404, "not_found")
    r = client.get(f"{BASE}/acme/debtors/D/history", headers=factory.headers("acme"))
    assert (r.status_code, r.json["code"]) == (403, "forbidden")
    r = client.get(f"{BASE}/acme/numbers/{PHONE}/history")
    assert (r.status_code, r.json["code"]) == (401, "unauthorized")
    assert client.get(f"{BASE}/acme/debtors/nobody-at-all/history", headers=admin).json["items"] == []
