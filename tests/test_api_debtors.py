"""The HTTP side of issue 10's counting: `debtor` on messages and batch items (stored, shown, filtered),
the check endpoint's `debtor=`, the new FZ settings (limit_group, rolling_windows, unknown_zone) with
their validation codes, and POST .../interactions with its errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from test_rules_limits import entity_row

from smsqueue.db import transaction
from smsqueue.messages import messages_t
from smsqueue.rules import policy

BASE = "/api/v1/legal-entities"
N1, N2 = "+79161234567", "+79161234568"
OPEN = {"from": "00:00", "to": "24:00"}
OPEN_FZ = {"weekday_hours": OPEN, "weekend_hours": OPEN, "per_day": 2}


@pytest.fixture
def admin(factory):
    return factory.headers()


@pytest.fixture
def acme(client, admin, factory):
    factory.provider(code="sim")
    body = {"code": "acme", "send_window": OPEN, "fz": OPEN_FZ, "providers": [{"provider": "sim"}]}
    assert client.post(BASE, json=body, headers=admin).status_code == 201
    return factory.headers("acme")


def problem_fields(r) -> dict[str, str]:
    assert r.status_code == 422 and r.content_type == "application/problem+json", r.data
    assert r.json["code"] == "validation_error"
    return {e["field"]: e["code"] for e in r.json["errors"]}


# --- debtor on messages -------------------------------------------------------------------------------


def test_a_message_keeps_and_shows_its_debtor_and_the_list_filters_by_it(client, acme):
    r = client.post("/api/v1/messages", json={"to": N1, "text": "a", "debtor": "Loan 42/A"}, headers=acme)
    assert r.status_code == 202 and r.json["debtor"] == "Loan 42/A"
    first = r.json["id"]
    assert client.get(f"/api/v1/messages/{first}", headers=acme).json["debtor"] == "Loan 42/A"
    batch = {"messages": [{"to": N2, "text": "b", "debtor": "Loan 42/A"}, {"to": N2, "text": "c"}]}
    r = client.post("/api/v1/messages/batch", json=batch, headers=acme)
    assert r.status_code == 200 and all("id" in x for x in r.json["results"]), r.json
    second = r.json["results"][0]["id"]
    listed = client.get("/api/v1/messages", query_string={"debtor": "Loan 42/A"}, headers=acme).json
    assert [m["id"] for m in listed["items"]] == [second, first]
    assert {m["debtor"] for m in listed["items"]} == {"Loan 42/A"}
    # exact match: another case is another debtor
    assert (
        client.get("/api/v1/messages", query_string={"debtor": "loan 42/a"}, headers=acme).json["items"] == []
    )
    without = client.get("/api/v1/messages", query_string={"to": N2}, headers=acme).json["items"]
    assert sorted(str(m["debtor"]) for m in without) == ["Loan 42/A", "None"]


def test_bad_debtors_are_422(client, acme):
    for debtor, code in (("", "too_short"), ("x" * 129, "too_long"), (42, "invalid_type")):
        r = client.post("/api/v1/messages", json={"to": N1, "text": "a", "debtor": debtor}, headers=acme)
        assert problem_fields(r) == {"debtor": code}
    r = client.post(
        "/api/v1/messages/batch", json={"messages": [{"to": N1, "text": "a", "debtor": ""}]}, headers=acme
    )
    assert r.json["results"][0]["error"]["errors"][0]["field"] == "debtor"
    r = client.get("/api/v1/messages", query_string={"debtor": "x" * 129}, headers=acme)
    assert problem_fields(r) == {"debtor": "too_long"}


def test_the_check_counts_the_debtor_across_numbers(client, admin, acme):
    ids = [
        client.post("/api/v1/messages", json={"to": to, "text": "a", "debtor": "d1"}, headers=acme).json["id"]
        for to in (N1, N2)
    ]
    at = datetime.now(UTC)
    with transaction() as conn:
        wanted = [uuid.UUID(i) for i in ids]
        rows = list(conn.execute(select(messages_t).where(messages_t.c.id.in_(wanted))))
        assert policy.decide_many(conn, [(r, entity_row(conn, r.legal_entity_id)) for r in rows], at) == [
            policy.Allow(),
            policy.Allow(),
        ]
    check = f"{BASE}/acme/providers/sim/check"
    q = {"to": "+79161234569", "recipient_timezone": "Europe/Moscow", "at": at.isoformat()}
    by_number = client.get(check, query_string=q, headers=admin).json
    assert by_number["allowed"] is True and by_number["counts"]["day"] == 0
    by_debtor = client.get(check, query_string={**q, "debtor": "d1"}, headers=admin).json
    assert by_debtor["allowed"] is False and by_debtor["reasons"] == ["fz_daily_limit"]
    assert by_debtor["counts"]["day"] == 2 and by_debtor["counts"]["rolling_24h"] == 2
    # a number of the debtor's: its own count is 1, but the debtor's 2 stop it
    one = client.get(check, query_string={**q, "to": N1}, headers=admin).json
    assert one["allowed"] is True and one["counts"]["day"] == 1
    assert (
        client.get(check, query_string={**q, "to": N1, "debtor": "d2"}, headers=admin).json["allowed"] is True
    )
    assert problem_fields(client.get(check, query_string={**q, "debtor": ""}, headers=admin)) == {
        "debtor": "too_short"
    }


# --- the FZ settings ----------------------------------------------------------------------------------


def test_fz_settings_of_issue_10_round_trip_and_their_defaults(client, admin, acme):
    fz = client.get(f"{BASE}/acme/fz", headers=admin).json
    assert (fz["limit_group"], fz["rolling_windows"], fz["unknown_zone"]) == (None, False, "entity")
    patch = {"fz": {"limit_group": "bank-1", "rolling_windows": True, "unknown_zone": "strictest"}}
    r = client.patch(f"{BASE}/acme", json=patch, headers=admin)
    assert r.status_code == 200 and {k: r.json["fz"][k] for k in patch["fz"]} == patch["fz"]
    assert r.json["fz"]["per_day"] == 2  # the others kept
    r = client.patch(f"{BASE}/acme", json={"fz": {"limit_group": None}}, headers=admin)  # null: leave it
    assert r.status_code == 200 and r.json["fz"]["limit_group"] is None and r.json["fz"]["rolling_windows"]


@pytest.mark.parametrize(
    ("fz", "expected"),
    [
        ({"limit_group": "Bank 1"}, {"fz.limit_group": "invalid_value"}),
        ({"limit_group": "x" * 65}, {"fz.limit_group": "too_long"}),
        ({"limit_group": 7}, {"fz.limit_group": "invalid_type"}),
        ({"rolling_windows": "yes"}, {"fz.rolling_windows": "invalid_type"}),
        ({"rolling_windows": None}, {"fz.rolling_windows": "invalid_type"}),
        ({"unknown_zone": "anywhere"}, {"fz.unknown_zone": "invalid_value"}),
        ({"unknown_zone": None}, {"fz.unknown_zone": "invalid_type"}),
    ],
)
def test_bad_fz_settings_are_422(client, admin, acme, fz, expected):
    assert problem_fields(client.patch(f"{BASE}/acme", json={"fz": fz}, headers=admin)) == expected


def test_bad_fz_settings_on_put_and_create(client, admin, acme):
    r = client.put(f"{BASE}/acme/fz", json={"unknown_zone": "x", "limit_group": "-"}, headers=admin)
    assert problem_fields(r) == {"unknown_zone": "invalid_value", "limit_group": "invalid_value"}
    r = client.post(BASE, json={"code": "b", "fz": {"rolling_windows": 1}}, headers=admin)
    assert problem_fields(r) == {"fz.rolling_windows": "invalid_type"}


# --- interactions -------------------------------------------------------------------------------------


def test_an_interaction_is_201_and_counts_for_the_debtor(client, admin, acme):
    at = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    body = {"to": "8 (916) 123-45-67", "debtor": "d1", "at": at.isoformat(), "channel": "voice_message"}
    r = client.post(f"{BASE}/acme/interactions", json=body, headers=admin)
    assert r.status_code == 201, r.json
    assert {k: r.json[k] for k in ("legal_entity", "to", "debtor", "channel")} == {
        "legal_entity": "acme",
        "to": N1,
        "debtor": "d1",
        "channel": "voice_message",
    }
    assert isinstance(r.json["id"], int) and r.json["at"] == at.isoformat().replace("+00:00", "Z")
    r = client.post(
        f"{BASE}/acme/interactions",
        json={"debtor": "d1", "at": at.isoformat(), "channel": "sms"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json["to"] is None
    check = client.get(
        f"{BASE}/acme/providers/sim/check",
        query_string={"to": N2, "debtor": "d1", "recipient_timezone": "Europe/Moscow"},
        headers=admin,
    ).json
    msk = ZoneInfo("Europe/Moscow")
    today = 2 if at.astimezone(msk).date() == datetime.now(msk).date() else 0  # a run just after midnight
    assert check["counts"]["rolling_24h"] == 2 and check["counts"]["day"] == today
    assert check["allowed"] is (today < 2) and check["reasons"] == ([] if today < 2 else ["fz_daily_limit"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"channel": "sms", "at": "2026-01-01T00:00:00Z"}, {"to": "required"}),
        ({"to": N1, "channel": "sms"}, {"at": "required"}),
        ({"to": N1, "at": "2026-01-01T00:00:00Z"}, {"channel": "required"}),
        ({"to": N1, "at": "2026-01-01T00:00:00Z", "channel": "fax"}, {"channel": "invalid_value"}),
        ({"to": "123", "at": "2026-01-01T00:00:00Z", "channel": "sms"}, {"to": "invalid_phone"}),
        ({"debtor": "", "at": "2026-01-01T00:00:00Z", "channel": "sms"}, {"debtor": "too_short"}),
        ({"to": N1, "at": "yesterday", "channel": "sms"}, {"at": "invalid_datetime"}),
        ({"to": N1, "at": "2099-01-01T00:00:00Z", "channel": "sms"}, {"at": "in_future"}),
        ({"to": N1, "at": "2026-01-01T00:00:00Z", "channel": "sms", "x": 1}, {"x": "unknown_field"}),
    ],
)
def test_bad_interactions_are_422(client, admin, acme, body, expected):
    assert problem_fields(client.post(f"{BASE}/acme/interactions", json=body, headers=admin)) == expected


def test_interactions_other_errors(client, admin, acme):
    ok = {"to": N1, "at": "2026-01-01T00:00:00Z", "channel": "sms"}
    assert client.post(f"{BASE}/nobody/interactions", json=ok, headers=admin).status_code == 404
    assert client.post(f"{BASE}/acme/interactions", json=ok, headers=acme).status_code == 403
    assert client.post(f"{BASE}/acme/interactions", json=ok).status_code == 401
    r = client.post(
        f"{BASE}/acme/interactions", data="{", headers={**admin, "Content-Type": "application/json"}
    )
    assert (r.status_code, r.json["code"]) == (400, "bad_json")
    r = client.post(f"{BASE}/acme/interactions", data="x", headers={**admin, "Content-Type": "text/plain"})
    assert (r.status_code, r.json["code"]) == (415, "unsupported_media_type")


def test_the_check_judges_a_mobile_in_every_zone_with_strictest(client, admin, acme):
    fz = {"fz": {"unknown_zone": "strictest", "weekday_hours": {"from": "08:00", "to": "22:00"}}}
    body = {"send_window": {"from": "09:00", "to": "21:00"}, **fz}
    assert client.patch(f"{BASE}/acme", json=body, headers=admin).status_code == 200
    check = f"{BASE}/acme/providers/sim/check"
    early = client.get(check, query_string={"to": N1, "at": "2026-11-25T06:59:00Z"}, headers=admin).json
    assert early["reasons"] == ["outside_send_window"] and early["next_allowed_at"] == "2026-11-25T07:00:00Z"
    assert client.get(check, query_string={"to": N1, "at": "2026-11-25T08:59:00Z"}, headers=admin).json[
        "allowed"
    ]
    late = client.get(check, query_string={"to": N1, "at": "2026-11-25T09:00:00Z"}, headers=admin).json
    assert late["next_allowed_at"] == "2026-11-26T07:00:00Z"
    # a recipient_timezone, or a geographic number, is judged in its own zone alone
    q = {"to": N1, "at": "2026-11-25T09:00:00Z", "recipient_timezone": "Europe/Moscow"}
    assert client.get(check, query_string=q, headers=admin).json["allowed"] is True
    q = {"to": "+74951234567", "at": "2026-11-25T09:00:00Z"}
    assert client.get(check, query_string=q, headers=admin).json["allowed"] is True
