"""The stop list (API.md "Debtors and the interaction rules"): its admin API with every error code, and
the sender's check: a message whose number or debtor is on the list is rejected with `stop_list` at
claim time, never counted, and the decision is recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from smsqueue.db import transaction
from smsqueue.messages import Followups, NewMessage, insert_messages, messages_t
from smsqueue.models.compliance import RuleDecision
from smsqueue.rules import stop_list
from smsqueue.sending import claim

BASE = "/api/v1/legal-entities"
PHONE = "+79161234567"
OTHER = "+79161234568"


@pytest.fixture
def admin(factory):
    return factory.headers()


@pytest.fixture
def acme(factory):
    return factory.entity(factory.provider(), code="acme")


def put(client, admin, path, body=None, code="acme"):
    return client.put(f"{BASE}/{code}/stop-list/{path}", json=body or {"reason": "refused"}, headers=admin)


# --- the API --------------------------------------------------------------------------------------------


def test_a_number_in_any_form_is_stored_e164_created_then_updated_then_deleted(client, admin, acme):
    r = put(client, admin, "numbers/8 (916) 123-45-67", {"reason": "refused", "note": "by phone"})
    assert r.status_code == 201, r.json
    assert r.json["to"] == PHONE and "debtor" not in r.json
    assert r.json | {"created_at": None, "updated_at": None} == {
        "to": PHONE, "reason": "refused", "note": "by phone", "document": None, "until": None,
        "active": True, "created_at": None, "updated_at": None,
    }  # fmt: skip
    r = put(client, admin, "numbers/+79161234567", {"reason": "wrong_number", "document": "letter 12"})
    assert r.status_code == 200
    assert (r.json["reason"], r.json["note"], r.json["document"]) == ("wrong_number", None, "letter 12")
    listed = client.get(f"{BASE}/acme/stop-list", query_string={"to": "89161234567"}, headers=admin).json
    assert [e["to"] for e in listed["items"]] == [PHONE] and listed["next_cursor"] is None
    assert client.delete(f"{BASE}/acme/stop-list/numbers/89161234567", headers=admin).status_code == 204
    gone = client.delete(f"{BASE}/acme/stop-list/numbers/89161234567", headers=admin)
    assert (gone.status_code, gone.json["code"]) == (404, "not_found")
    assert client.get(f"{BASE}/acme/stop-list", headers=admin).json["items"] == []


def test_debtors_and_filters_and_a_passed_until(client, admin, acme):
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert put(client, admin, "debtors/D-1", {"reason": "protected", "until": past}).status_code == 201
    assert put(client, admin, "debtors/D-2", {"reason": "representative_only"}).status_code == 201
    assert put(client, admin, f"numbers/{PHONE}").status_code == 201
    items = client.get(f"{BASE}/acme/stop-list", headers=admin).json["items"]
    assert [e.get("to") or e.get("debtor") for e in items] == [PHONE, "D-2", "D-1"]  # newest first
    assert [e["active"] for e in items] == [True, True, False]
    by_debtor = client.get(f"{BASE}/acme/stop-list", query_string={"debtor": "D-2"}, headers=admin).json
    assert [e["debtor"] for e in by_debtor["items"]] == ["D-2"]
    by_reason = client.get(f"{BASE}/acme/stop-list", query_string={"reason": "protected"}, headers=admin)
    assert [e["debtor"] for e in by_reason.json["items"]] == ["D-1"]
    assert client.delete(f"{BASE}/acme/stop-list/debtors/D-1", headers=admin).status_code == 204


def test_the_list_pages_with_a_cursor(client, admin, acme):
    for i in range(5):
        assert put(client, admin, f"debtors/d{i}").status_code == 201
    seen, cursor = [], None
    while True:
        q = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{BASE}/acme/stop-list", query_string=q, headers=admin).json
        seen += [e["debtor"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["d4", "d3", "d2", "d1", "d0"]


def test_the_batch_reports_each_entry(client, admin, acme):
    body = {
        "entries": [
            {"to": "89161234567", "reason": "refused"},
            {"debtor": "D-9", "reason": "other", "note": "n"},
            {"to": "123", "reason": "refused"},
            {"to": PHONE, "debtor": "x", "reason": "refused"},
            {"reason": "refused"},
            {"debtor": "D-9", "reason": "maybe"},
            {"to": PHONE, "reason": "protected"},
        ]
    }
    r = client.post(f"{BASE}/acme/stop-list/batch", json=body, headers=admin)
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert [x["index"] for x in results] == list(range(7))
    assert [x.get("status") for x in results] == ["created", "created", None, None, None, None, "updated"]
    assert results[0]["entry"]["to"] == PHONE and results[6]["entry"]["reason"] == "protected"
    errors = {i: results[i]["error"] for i in (2, 3, 4, 5)}
    assert all(e["status"] == 422 and e["code"] == "validation_error" for e in errors.values())
    assert errors[2]["errors"][0] | {"message": ""} == {"field": "to", "code": "invalid_phone", "message": ""}
    assert [e["code"] for e in errors[3]["errors"]] == ["required"]  # exactly one of to and debtor
    assert [e["code"] for e in errors[4]["errors"]] == ["required"]
    assert [(e["field"], e["code"]) for e in errors[5]["errors"]] == [("reason", "invalid_value")]
    assert len(client.get(f"{BASE}/acme/stop-list", headers=admin).json["items"]) == 2


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("put", "numbers/12345", {"reason": "refused"}, 422, "validation_error", ("number", "invalid_phone")),
        (
            "put",
            "numbers/+77012345678",
            {"reason": "refused"},
            422,
            "validation_error",
            ("number", "invalid_phone"),
        ),
        ("put", f"numbers/{PHONE}", {"reason": "nope"}, 422, "validation_error", ("reason", "invalid_value")),
        ("put", f"numbers/{PHONE}", {}, 422, "validation_error", ("reason", "required")),
        (
            "put",
            f"numbers/{PHONE}",
            {"reason": "refused", "until": "tomorrow"},
            422,
            "validation_error",
            ("until", "invalid_datetime"),
        ),
        (
            "put",
            f"numbers/{PHONE}",
            {"reason": "refused", "until": "2027-01-01T00:00:00"},
            422,
            "validation_error",
            ("until", "invalid_datetime"),
        ),
        (
            "put",
            f"numbers/{PHONE}",
            {"reason": "refused", "x": 1},
            422,
            "validation_error",
            ("x", "unknown_field"),
        ),
        (
            "put",
            f"numbers/{PHONE}",
            {"reason": "refused", "note": "n" * 2001},
            422,
            "validation_error",
            ("note", "too_long"),
        ),
        (
            "put",
            "debtors/" + "d" * 129,
            {"reason": "refused"},
            422,
            "validation_error",
            ("debtor", "too_long"),
        ),
        ("delete", "numbers/12345", None, 422, "validation_error", ("number", "invalid_phone")),
        ("post", "batch", {"entries": []}, 422, "validation_error", ("entries", "too_short")),
        ("post", "batch", {"entries": [{}] * 1001}, 422, "validation_error", ("entries", "too_long")),
        ("post", "batch", {"items": []}, 422, "validation_error", ("entries", "required")),
    ],
)
def test_bad_input_has_its_code(client, admin, acme, method, path, body, status, code, field):
    r = getattr(client, method)(f"{BASE}/acme/stop-list/{path}", json=body, headers=admin)
    assert (r.status_code, r.json["code"]) == (status, code), r.json
    assert r.mimetype == "application/problem+json"
    assert field in [(e["field"], e["code"]) for e in r.json["errors"]]


def test_bad_bodies_cursors_entities_and_keys(client, admin, factory, acme):
    url = f"{BASE}/acme/stop-list/numbers/{PHONE}"
    r = client.put(url, data="{", headers={**admin, "Content-Type": "application/json"})
    assert (r.status_code, r.json["code"]) == (400, "bad_json")
    r = client.put(url, data="reason=refused", headers={**admin, "Content-Type": "text/plain"})
    assert (r.status_code, r.json["code"]) == (415, "unsupported_media_type")
    r = client.get(f"{BASE}/acme/stop-list", query_string={"cursor": "bogus"}, headers=admin)
    assert (r.status_code, r.json["errors"][0]["code"]) == (422, "invalid_cursor")
    r = client.get(f"{BASE}/acme/stop-list", query_string={"limit": 0}, headers=admin)
    assert (r.status_code, r.json["errors"][0]["code"]) == (422, "too_small")
    r = put(client, admin, f"numbers/{PHONE}", code="nobody")
    assert (r.status_code, r.json["code"]) == (404, "not_found")
    entity_key = factory.headers("acme")
    for method, path in [
        ("get", ""),
        ("put", f"/numbers/{PHONE}"),
        ("delete", "/debtors/d"),
        ("post", "/batch"),
    ]:
        r = getattr(client, method)(
            f"{BASE}/acme/stop-list{path}", json={"reason": "refused"}, headers=entity_key
        )
        assert (r.status_code, r.json["code"]) == (403, "forbidden")
    r = client.get(f"{BASE}/acme/stop-list")
    assert (r.status_code, r.json["code"]) == (401, "unauthorized")


# --- the scope: one list per limit group ------------------------------------------------------------------


def test_entities_of_one_limit_group_share_a_list_and_keep_their_own_entries():
    a = SimpleNamespace(id=1, fz_limit_group="bank-and-agency")
    b = SimpleNamespace(id=2, fz_limit_group="bank-and-agency")
    alone = SimpleNamespace(id=1, fz_limit_group=None)
    assert stop_list.scopes_of(alone) == ("e:1",)
    assert stop_list.scopes_of(a) == ("g:bank-and-agency", "e:1")
    assert stop_list.scopes_of(b)[0] == stop_list.scopes_of(a)[0]


# --- the sender -----------------------------------------------------------------------------------------


def queue(entity_id: int, to: str, debtor: str | None = None) -> int:
    new = NewMessage(
        id=uuid.uuid4(),
        legal_entity_id=entity_id,
        to=to,
        text="hi",
        segments=1,
        encoding="GSM-7",
        debtor=debtor,
    )
    with transaction() as conn:
        (moved,) = insert_messages(conn, [new])
    return moved.pk


def test_the_claim_rejects_stopped_messages_before_counting_and_records_why(client, admin, factory):
    entity = factory.entity(factory.provider(rate_limit_per_second=None), code="acme")
    assert put(client, admin, f"numbers/{PHONE}").status_code == 201
    assert put(client, admin, "debtors/D-1").status_code == 201
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert put(client, admin, "debtors/D-old", {"reason": "refused", "until": past}).status_code == 201
    stopped_number = queue(entity.id, PHONE)
    stopped_debtor = queue(entity.id, OTHER, debtor="D-1")
    free = queue(entity.id, OTHER, debtor="D-old")
    with transaction() as conn:
        claimed = claim(conn, [stopped_number, stopped_debtor, free], datetime.now(UTC), Followups())
    assert [c.message.pk for c in claimed] == [free]
    with transaction() as conn:
        rows = {r.pk: r for r in conn.execute(select(messages_t))}
        decisions = {r.message_pk: r for r in conn.execute(select(RuleDecision.__table__))}
    for pk in (stopped_number, stopped_debtor):
        assert (rows[pk].status, rows[pk].reason, rows[pk].fz_counted_on) == ("rejected", "stop_list", None)
        assert (decisions[pk].outcome, decisions[pk].reasons, decisions[pk].counts) == (
            "rejected", ["stop_list"], None,
        )  # fmt: skip
    assert rows[free].status == "sending" and rows[free].fz_counted_on is not None
    assert (decisions[free].outcome, decisions[free].counts) == ("allowed", {"day": 0, "week": 0, "month": 0})


def test_stopped_takes_the_debtor_as_a_parameter_and_one_query_answers_a_batch():
    at = datetime.now(UTC)
    stamps = {"created_at": at, "updated_at": at}
    with transaction() as conn:
        conn.execute(
            stop_list.entries_t.insert(),
            [
                {"scope": "g:grp", "kind": "debtor", "value": "P", "reason": "refused", **stamps},
                {"scope": "e:7", "kind": "number", "value": PHONE, "reason": "protected", **stamps},
            ],
        )
        found = stop_list.stopped(
            conn,
            [
                stop_list.Candidate(1, ("g:grp", "e:9"), OTHER, "P"),  # the group's debtor
                stop_list.Candidate(2, ("e:9",), OTHER, "P"),  # another entity, not in the group
                stop_list.Candidate(3, ("g:grp", "e:7"), PHONE, None),  # its own entry, from before the group
                stop_list.Candidate(4, ("e:7",), OTHER, None),
            ],
            at,
        )
        conn.rollback()
    assert found == {1, 3}


def test_a_batch_of_a_thousand_then_the_same_thousand_again(client, admin, acme):
    entries = [{"debtor": f"D-{i}", "reason": "refused"} for i in range(1000)]
    first = client.post(f"{BASE}/acme/stop-list/batch", json={"entries": entries}, headers=admin).json[
        "results"
    ]
    assert [x["status"] for x in first] == ["created"] * 1000
    again = [{**e, "reason": "protected"} for e in entries]
    second = client.post(f"{BASE}/acme/stop-list/batch", json={"entries": again}, headers=admin).json[
        "results"
    ]
    assert [(x["status"], x["entry"]["reason"]) for x in second] == [("updated", "protected")] * 1000
    assert [x["entry"]["debtor"] for x in second] == [e["debtor"] for e in entries]
    page = client.get(f"{BASE}/acme/stop-list", query_string={"limit": 500}, headers=admin).json
    assert len(page["items"]) == 500 and page["next_cursor"] is not None
