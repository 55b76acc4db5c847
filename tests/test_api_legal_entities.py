"""The legal-entities API against a real PostgreSQL: entities, their send window and 230-FZ settings,
their providers and the check; every bad input of API.md with its status and code, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from smsqueue.crypto import decrypt
from smsqueue.db import transaction
from smsqueue.models import LegalEntity

BASE = "/api/v1/legal-entities"
PHONE = "+79161234567"
VALID_INN_10 = "7707083893"
VALID_INN_12 = "500100732259"

DEFAULT_FZ = {
    "enabled": True,
    "per_day": 2,
    "per_week": 4,
    "per_month": 16,
    "weekday_hours": {"from": "08:00", "to": "22:00"},
    "weekend_hours": {"from": "09:00", "to": "20:00"},
    "holidays_as_weekends": True,
    "on_limit": "reject",
    "limit_group": None,
    "rolling_windows": False,
    "unknown_zone": "entity",
    "identification": "off",
}
NONE_COUNTED = {"day": 0, "week": 0, "month": 0, "rolling_24h": 0, "rolling_7d": 0, "rolling_30d": 0}

API_EXAMPLE = {
    "code": "acme",
    "name": "ACME Collect LLC",
    "inn": "7707083893",
    "active": True,
    "timezone": "Europe/Moscow",
    "callback_url": "https://acme.example/sms-status",
    "retention_days": 548,
    "send_window": {"from": "09:00", "to": "21:00"},
    "on_window": "defer",
    "fz": DEFAULT_FZ,
}


def send_now(pks: list[int]) -> None:
    """The sender's work for these messages, in this process (no worker); its metrics are written out
    at once so that none stay pending in this process for a later test to find."""
    from smsqueue import metrics, sending

    sending.process(pks)
    metrics.flush(force=True)


@pytest.fixture
def admin(factory):
    return factory.headers()


def assert_problem(response, status: int, code: str):
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    body = response.json
    assert (body["status"], body["code"], body["type"]) == (status, code, "about:blank")
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def field_codes(body) -> dict[str, str]:
    return {e["field"]: e["code"] for e in body["errors"]}


def create(client, admin, **body):
    return client.post(BASE, json={"code": "acme", **body}, headers=admin)


# --- auth ---------------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", BASE, None),
    ("POST", BASE, {"code": "x"}),
    ("GET", f"{BASE}/acme", None),
    ("PATCH", f"{BASE}/acme", {"name": "x"}),
    ("DELETE", f"{BASE}/acme", None),
    ("GET", f"{BASE}/acme/send-window", None),
    ("PUT", f"{BASE}/acme/send-window", {"from": "09:00", "to": "21:00"}),
    ("GET", f"{BASE}/acme/fz", None),
    ("PUT", f"{BASE}/acme/fz", {}),
    ("GET", f"{BASE}/acme/providers", None),
    ("GET", f"{BASE}/acme/providers/sms1", None),
    ("PUT", f"{BASE}/acme/providers/sms1", {"priority": 1}),
    ("DELETE", f"{BASE}/acme/providers/sms1", None),
    ("GET", f"{BASE}/acme/providers/sms1/check?to=%2B79161234567", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_needs_an_admin_key(client, factory, method, path, body):
    entity = factory.entity(factory.provider(code="sms1"), code="acme")
    assert_problem(client.open(path, method=method, json=body), 401, "unauthorized")
    assert_problem(
        client.open(path, method=method, json=body, headers=factory.headers(entity)), 403, "forbidden"
    )


# --- create -------------------------------------------------------------------------------------------


def test_create_with_only_a_code_takes_the_documented_defaults(client, admin):
    r = create(client, admin)
    assert r.status_code == 201, r.json
    assert r.headers["Location"] == f"{BASE}/acme"
    body = r.json
    secret = body.pop("webhook_secret")
    assert secret.startswith("whsec_") and len(secret) > 20
    assert body == {
        "code": "acme",
        "name": "acme",
        "inn": None,
        "active": True,
        "timezone": "Europe/Moscow",
        "callback_url": None,
        "creditor_name": None,
        "contact_phone": None,
        "retention_days": 548,
        "send_window": {"from": "09:00", "to": "21:00"},
        "on_window": "defer",
        "fz": DEFAULT_FZ,
        "providers": [],
    }
    with transaction() as conn:
        stored = conn.execute(
            select(LegalEntity.webhook_secret).where(LegalEntity.code == "acme")
        ).scalar_one()
    assert stored != secret and decrypt(stored) == secret  # encrypted at rest, the same secret


def test_the_api_example_round_trips_and_the_secret_is_masked_afterwards(client, admin, factory):
    factory.provider(code="smsc-main")
    r = client.post(
        BASE,
        json={**API_EXAMPLE, "providers": [{"provider": "smsc-main", "priority": 1, "sender": "ACME"}]},
        headers=admin,
    )
    assert r.status_code == 201, r.json
    expected = {
        **API_EXAMPLE,
        "creditor_name": None,
        "contact_phone": None,
        "webhook_secret": "***",
        "providers": [{"provider": "smsc-main", "priority": 1, "sender": "ACME", "enabled": True}],
    }
    assert r.json["webhook_secret"] != "***"
    assert {**r.json, "webhook_secret": "***"} == expected
    got = client.get(f"{BASE}/acme", headers=admin)
    assert got.status_code == 200
    assert got.json == expected
    assert list(got.json) == [  # the documented order of fields
        "code", "name", "inn", "active", "timezone", "callback_url", "webhook_secret",
        "send_window", "on_window", "fz", "providers", "creditor_name", "contact_phone", "retention_days",
    ]  # fmt: skip


def test_a_12_digit_inn_is_accepted(client, admin):
    r = create(client, admin, inn=VALID_INN_12)
    assert r.status_code == 201, r.json
    assert r.json["inn"] == VALID_INN_12


def test_a_duplicate_code_is_a_conflict(client, admin):
    assert create(client, admin).status_code == 201
    body = assert_problem(create(client, admin, name="Other"), 409, "conflict")
    assert "acme" in body["detail"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": "Acme!"}, {"code": "invalid_value"}),
        ({"code": ""}, {"code": "invalid_value"}),
        ({"code": "-acme"}, {"code": "invalid_value"}),
        ({"code": "a" * 65}, {"code": "too_long"}),
        ({"code": 5}, {"code": "invalid_type"}),
        ({}, {"code": "required"}),
        ({"code": "acme", "inn": "7707083894"}, {"inn": "invalid_inn"}),
        ({"code": "acme", "inn": "770708389"}, {"inn": "invalid_inn"}),
        ({"code": "acme", "inn": "500100732258"}, {"inn": "invalid_inn"}),
        ({"code": "acme", "inn": " 7707083893"}, {"inn": "invalid_inn"}),
        ({"code": "acme", "inn": 7707083893}, {"inn": "invalid_type"}),
        ({"code": "acme", "timezone": "Mars/Olympus"}, {"timezone": "invalid_timezone"}),
        ({"code": "acme", "timezone": "MSK"}, {"timezone": "invalid_timezone"}),
        ({"code": "acme", "name": ""}, {"name": "too_short"}),
        ({"code": "acme", "callback_url": "ftp://acme.example/x"}, {"callback_url": "invalid_url"}),
        ({"code": "acme", "on_window": "later"}, {"on_window": "invalid_value"}),
        ({"code": "acme", "active": "yes"}, {"active": "invalid_type"}),
        ({"code": "acme", "colour": "red"}, {"colour": "unknown_field"}),
        (
            {"code": "acme", "send_window": {"from": "25:00", "to": "21:00"}},
            {"send_window.from": "invalid_time"},
        ),
        (
            {"code": "acme", "send_window": {"from": "9:00", "to": "21:00"}},
            {"send_window.from": "invalid_time"},
        ),
        (
            {"code": "acme", "send_window": {"from": "09:60", "to": "21:00"}},
            {"send_window.from": "invalid_time"},
        ),
        (
            {"code": "acme", "send_window": {"from": "09:00", "to": "24:01"}},
            {"send_window.to": "invalid_time"},
        ),
        (
            {"code": "acme", "send_window": {"from": "24:00", "to": "21:00"}},
            {"send_window.from": "invalid_time"},
        ),
        ({"code": "acme", "send_window": {"from": "09:00", "to": "09:00"}}, {"send_window": "empty_window"}),
        ({"code": "acme", "send_window": {"from": "09:00"}}, {"send_window.to": "required"}),
        ({"code": "acme", "send_window": {"from": 9, "to": "21:00"}}, {"send_window.from": "invalid_type"}),
        (
            {"code": "acme", "send_window": {"from": "09:00", "to": "21:00", "tz": "x"}},
            {"send_window.tz": "unknown_field"},
        ),
        ({"code": "acme", "fz": {"per_day": -1}}, {"fz.per_day": "too_small"}),
        ({"code": "acme", "fz": {"per_day": 1.5}}, {"fz.per_day": "invalid_type"}),
        ({"code": "acme", "fz": {"per_day": "2"}}, {"fz.per_day": "invalid_type"}),
        ({"code": "acme", "fz": {"per_day": True}}, {"fz.per_day": "invalid_type"}),
        ({"code": "acme", "fz": {"per_month": 10_000_000}}, {"fz.per_month": "too_large"}),
        (
            {"code": "acme", "fz": {"per_day": 3, "per_week": 2}},
            {"fz.per_week": "limit_below_shorter_period"},
        ),
        ({"code": "acme", "fz": {"per_day": 2}, "inn": "1"}, {"inn": "invalid_inn"}),
        (
            {"code": "acme", "fz": {"per_week": 5, "per_month": 4}},
            {"fz.per_month": "limit_below_shorter_period"},
        ),
        ({"code": "acme", "fz": {"per_day": 5}}, {"fz.per_week": "limit_below_shorter_period"}),
        (
            {"code": "acme", "fz": {"weekday_hours": {"from": "22:00", "to": "08:00"}}},
            {"fz.weekday_hours": "crosses_midnight"},
        ),
        (
            {"code": "acme", "fz": {"weekend_hours": {"from": "09:00", "to": "09:00"}}},
            {"fz.weekend_hours": "empty_window"},
        ),
        (
            {"code": "acme", "fz": {"weekend_hours": {"from": "09:00", "to": "25:00"}}},
            {"fz.weekend_hours.to": "invalid_time"},
        ),
        ({"code": "acme", "fz": {"on_limit": "drop"}}, {"fz.on_limit": "invalid_value"}),
        ({"code": "acme", "fz": {"enabled": 1}}, {"fz.enabled": "invalid_type"}),
        ({"code": "acme", "webhook_secret": "mine"}, {"webhook_secret": "unknown_field"}),
        (
            {"code": "acme", "providers": [{"provider": "nope"}]},
            {"providers[0].provider": "unknown_provider"},
        ),
        ({"code": "acme", "providers": [{"priority": 1}]}, {"providers[0].provider": "required"}),
        (
            {"code": "acme", "providers": [{"provider": "nope", "priority": 0}]},
            {"providers[0].priority": "too_small", "providers[0].provider": "unknown_provider"},
        ),
    ],
)
def test_create_refuses_bad_input_with_the_field_and_its_code(client, admin, body, expected):
    r = client.post(BASE, json=body, headers=admin)
    problem = assert_problem(r, 422, "validation_error")
    assert field_codes(problem) == expected
    assert client.get(BASE, headers=admin).json == {"items": []}


def test_create_reports_every_invalid_field_at_once(client, admin):
    body = {
        "code": "Bad Code",
        "inn": "123",
        "timezone": "Nowhere/Here",
        "send_window": {"from": "25:00", "to": "21:00"},
        "fz": {"per_day": -1, "weekday_hours": {"from": "23:00", "to": "01:00"}},
    }
    problem = assert_problem(client.post(BASE, json=body, headers=admin), 422, "validation_error")
    assert field_codes(problem) == {
        "code": "invalid_value",
        "inn": "invalid_inn",
        "timezone": "invalid_timezone",
        "send_window.from": "invalid_time",
        "fz.per_day": "too_small",
        "fz.weekday_hours": "crosses_midnight",
    }
    assert problem["detail"] == "6 fields are invalid"


def test_create_reports_the_checks_that_need_the_database_beside_the_others(client, admin):
    body = {
        "code": "Bad Code",
        "fz": {"per_day": 5, "per_week": 3},
        "providers": [{"provider": "nope", "priority": 0}, {"provider": "nope-either"}],
    }
    problem = assert_problem(client.post(BASE, json=body, headers=admin), 422, "validation_error")
    assert field_codes(problem) == {
        "code": "invalid_value",
        "providers[0].priority": "too_small",
        "providers[0].provider": "unknown_provider",
        "providers[1].provider": "unknown_provider",
        "fz.per_week": "limit_below_shorter_period",
    }


def test_create_accepts_the_edges_of_the_window_rules(client, admin):
    r = create(
        client,
        admin,
        send_window={"from": "22:00", "to": "06:00"},  # across midnight
        fz={"weekday_hours": {"from": "00:00", "to": "24:00"}, "per_day": 0, "per_week": 0, "per_month": 0},
    )
    assert r.status_code == 201, r.json
    assert r.json["send_window"] == {"from": "22:00", "to": "06:00"}
    assert r.json["fz"]["weekday_hours"] == {"from": "00:00", "to": "24:00"}
    assert (r.json["fz"]["per_day"], r.json["fz"]["per_week"], r.json["fz"]["per_month"]) == (0, 0, 0)


def test_a_private_callback_url_is_refused_unless_allowed(client, admin, monkeypatch):
    from smsqueue.config import settings

    monkeypatch.setenv("SMSQUEUE_ALLOW_PRIVATE_CALLBACKS", "false")
    settings.cache_clear()
    try:
        r = create(client, admin, callback_url="http://10.1.2.3/cb")
        assert field_codes(assert_problem(r, 422, "validation_error")) == {
            "callback_url": "callback_url_not_allowed"
        }
        assert create(client, admin, callback_url="https://8.8.8.8/cb").status_code == 201
    finally:
        monkeypatch.undo()
        settings.cache_clear()


def test_bad_bodies(client, admin):
    assert_problem(
        client.post(BASE, data="{", content_type="application/json", headers=admin), 400, "bad_json"
    )
    assert_problem(client.post(BASE, json=["acme"], headers=admin), 400, "bad_json")
    assert_problem(
        client.post(BASE, data="code=acme", content_type="text/plain", headers=admin),
        415,
        "unsupported_media_type",
    )


# --- read and list ------------------------------------------------------------------------------------


def test_list_is_by_code_masks_secrets_and_filters_on_active(client, admin):
    for code in ("zeta", "alpha", "mid"):
        assert create(client, admin, code=code).status_code == 201
    assert client.delete(f"{BASE}/mid", headers=admin).status_code == 200
    items = client.get(BASE, headers=admin).json["items"]
    assert [e["code"] for e in items] == ["alpha", "mid", "zeta"]
    assert {e["webhook_secret"] for e in items} == {"***"}
    assert [e["code"] for e in client.get(f"{BASE}?active=true", headers=admin).json["items"]] == [
        "alpha",
        "zeta",
    ]
    assert [e["code"] for e in client.get(f"{BASE}?active=false", headers=admin).json["items"]] == ["mid"]
    problem = assert_problem(client.get(f"{BASE}?active=maybe", headers=admin), 422, "validation_error")
    assert field_codes(problem) == {"active": "invalid_type"}


def test_unknown_entity_is_404_everywhere(client, admin, factory):
    factory.provider(code="sms1")
    for method, path, body in ENDPOINTS[2:]:
        r = client.open(path, method=method, json=body, headers=admin)
        assert_problem(r, 404, "not_found")


# --- edit ---------------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client, admin):
    original = create(client, admin, **{k: v for k, v in API_EXAMPLE.items() if k != "code"}).json
    r = client.patch(f"{BASE}/acme", json={"name": "ACME 2", "fz": {"per_day": 1}}, headers=admin)
    assert r.status_code == 200, r.json
    expected = {**original, "webhook_secret": "***", "name": "ACME 2", "fz": {**DEFAULT_FZ, "per_day": 1}}
    assert r.json == expected
    assert client.get(f"{BASE}/acme", headers=admin).json == expected


def test_patch_every_field(client, admin, factory):
    factory.provider(code="p1")
    factory.provider(code="p2")
    assert create(client, admin, inn=VALID_INN_10, callback_url="https://a.example/cb").status_code == 201
    patch = {
        "code": "acme",
        "name": "New name",
        "inn": None,
        "timezone": "Asia/Vladivostok",
        "callback_url": None,
        "retention_days": 31,
        "webhook_secret": "***",
        "send_window": {"from": "20:00", "to": "02:00"},
        "on_window": "reject",
        "fz": {
            "enabled": False,
            "per_day": 3,
            "per_week": 5,
            "per_month": 20,
            "weekday_hours": {"from": "07:00", "to": "23:00"},
            "weekend_hours": {"from": "10:00", "to": "19:00"},
            "holidays_as_weekends": False,
            "on_limit": "defer",
            "limit_group": "acme-group",
            "rolling_windows": True,
            "unknown_zone": "strictest",
            "identification": "append",
        },
        "creditor_name": "OOO Kredit",
        "contact_phone": "8-800-555-35-35",
        "providers": [
            {"provider": "p2", "sender": "TWO"},
            {"provider": "p1", "priority": 5, "enabled": False},
        ],
    }
    r = client.patch(f"{BASE}/acme", json=patch, headers=admin)
    assert r.status_code == 200, r.json
    assert r.json == {
        **patch,
        "active": True,
        "providers": [
            {"provider": "p2", "priority": 1, "sender": "TWO", "enabled": True},
            {"provider": "p1", "priority": 5, "sender": None, "enabled": False},
        ],
    }


def test_patch_providers_replaces_the_links(client, admin, factory):
    for code in ("p1", "p2", "p3"):
        factory.provider(code=code)
    body = {"providers": [{"provider": "p1", "sender": "ONE"}, {"provider": "p2"}]}
    assert create(client, admin, **body).status_code == 201
    new_links = [{"provider": "p3"}, {"provider": "p1", "priority": 2}]
    r = client.patch(f"{BASE}/acme", json={"providers": new_links}, headers=admin)
    assert r.status_code == 200, r.json
    assert r.json["providers"] == [
        {"provider": "p3", "priority": 1, "sender": None, "enabled": True},
        {"provider": "p1", "priority": 2, "sender": "ONE", "enabled": True},  # sender kept
    ]
    r = client.patch(f"{BASE}/acme", json={"providers": []}, headers=admin)
    assert r.json["providers"] == []


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"code": "other"}, {"code": "invalid_value"}),
        ({"name": None}, {"name": "invalid_type"}),
        ({"timezone": None}, {"timezone": "invalid_type"}),
        ({"active": None}, {"active": "invalid_type"}),
        ({"fz": None}, {"fz": "invalid_type"}),
        ({"fz": {"per_day": None}}, {"fz.per_day": "invalid_type"}),
        ({"send_window": None}, {"send_window": "invalid_type"}),
        ({"webhook_secret": "whsec_mine"}, {"webhook_secret": "invalid_value"}),
        ({"inn": "1234567890"}, {"inn": "invalid_inn"}),
        ({"timezone": "Europe/Atlantis"}, {"timezone": "invalid_timezone"}),
        ({"send_window": {"from": "25:00", "to": "21:00"}}, {"send_window.from": "invalid_time"}),
        ({"fz": {"per_day": 5}}, {"fz.per_week": "limit_below_shorter_period"}),  # stored per_week is 4
        ({"fz": {"per_week": 20}}, {"fz.per_month": "limit_below_shorter_period"}),  # stored per_month is 16
        ({"fz": {"per_week": 1}}, {"fz.per_week": "limit_below_shorter_period"}),  # stored per_day is 2
        ({"fz": {"per_day": -2}}, {"fz.per_day": "too_small"}),
        ({"providers": [{"provider": "p9"}]}, {"providers[0].provider": "unknown_provider"}),
        ({"providers": [{"provider": "p1"}, {"provider": "p1"}]}, {"providers[1].provider": "duplicate"}),
        ({"id": 3}, {"id": "unknown_field"}),
    ],
)
def test_patch_refuses_bad_input_and_changes_nothing(client, admin, factory, patch, expected):
    factory.provider(code="p1")
    before = create(client, admin).json
    problem = assert_problem(client.patch(f"{BASE}/acme", json=patch, headers=admin), 422, "validation_error")
    assert field_codes(problem) == expected
    assert client.get(f"{BASE}/acme", headers=admin).json == {**before, "webhook_secret": "***"}


def test_patch_reports_every_invalid_field_at_once(client, admin):
    assert create(client, admin).status_code == 201
    patch = {"name": None, "code": "other", "fz": {"per_day": 5}, "providers": [{"provider": "zz"}]}
    problem = assert_problem(client.patch(f"{BASE}/acme", json=patch, headers=admin), 422, "validation_error")
    assert field_codes(problem) == {
        "name": "invalid_type",
        "code": "invalid_value",
        "fz.per_week": "limit_below_shorter_period",
        "providers[0].provider": "unknown_provider",
    }


def test_patch_can_raise_limits_together(client, admin):
    assert create(client, admin).status_code == 201
    r = client.patch(
        f"{BASE}/acme", json={"fz": {"per_day": 5, "per_week": 10, "per_month": 30}}, headers=admin
    )
    assert r.status_code == 200, r.json
    assert (r.json["fz"]["per_day"], r.json["fz"]["per_week"], r.json["fz"]["per_month"]) == (5, 10, 30)


# --- deactivate ---------------------------------------------------------------------------------------


def test_delete_deactivates_and_patch_reactivates(client, admin):
    assert create(client, admin).status_code == 201
    r = client.delete(f"{BASE}/acme", headers=admin)
    assert r.status_code == 200
    assert r.json["active"] is False and r.json["code"] == "acme"
    assert client.delete(f"{BASE}/acme", headers=admin).json["active"] is False  # again: the same
    assert client.get(f"{BASE}/acme", headers=admin).json["active"] is False
    assert client.patch(f"{BASE}/acme", json={"active": True}, headers=admin).json["active"] is True


def test_a_deactivated_entitys_messages_are_rejected(client, admin, factory, simulator):
    entity = factory.entity(factory.provider(simulator.url), code="acme")
    headers = factory.headers(entity)
    assert client.delete(f"{BASE}/acme", headers=admin).status_code == 200
    r = client.post("/api/v1/messages", json={"to": PHONE, "text": "hi"}, headers=headers)
    assert r.status_code == 202
    send_now([_pk(r.json["id"])])
    message = client.get(f"/api/v1/messages/{r.json['id']}", headers=headers).json
    assert (message["status"], message["reason"]) == ("rejected", "entity_inactive")
    assert simulator.received() == []


def _pk(message_id: str) -> int:
    import uuid

    from smsqueue.models import Message

    with transaction() as conn:
        return conn.execute(select(Message.pk).where(Message.id == uuid.UUID(message_id))).scalar_one()


# --- send window and fz -------------------------------------------------------------------------------


def test_send_window_get_and_put(client, admin):
    assert create(client, admin).status_code == 201
    assert client.get(f"{BASE}/acme/send-window", headers=admin).json == {"from": "09:00", "to": "21:00"}
    r = client.put(f"{BASE}/acme/send-window", json={"from": "21:00", "to": "06:00"}, headers=admin)
    assert (r.status_code, r.json) == (200, {"from": "21:00", "to": "06:00"})
    assert client.get(f"{BASE}/acme", headers=admin).json["send_window"] == {"from": "21:00", "to": "06:00"}
    r = client.put(f"{BASE}/acme/send-window", json={"from": "00:00", "to": "24:00"}, headers=admin)
    assert r.json == {"from": "00:00", "to": "24:00"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"from": "25:00", "to": "21:00"}, {"from": "invalid_time"}),
        ({"from": "09:00", "to": "21:60"}, {"to": "invalid_time"}),
        ({"from": "24:00", "to": "06:00"}, {"from": "invalid_time"}),
        ({"from": "10:00", "to": "10:00"}, {"body": "empty_window"}),
        ({"from": "09:00"}, {"to": "required"}),
        ({"from": "09:00", "to": "21:00", "on_window": "reject"}, {"on_window": "unknown_field"}),
        ({"from": "9", "to": "21:00"}, {"from": "invalid_time"}),
    ],
)
def test_send_window_put_refuses_bad_windows(client, admin, body, expected):
    assert create(client, admin).status_code == 201
    problem = assert_problem(
        client.put(f"{BASE}/acme/send-window", json=body, headers=admin), 422, "validation_error"
    )
    assert field_codes(problem) == expected
    assert client.get(f"{BASE}/acme/send-window", headers=admin).json == {"from": "09:00", "to": "21:00"}


def test_fz_get_and_put_replaces_the_settings_whole(client, admin):
    assert create(client, admin, fz={**DEFAULT_FZ, "per_day": 1, "on_limit": "defer"}).status_code == 201
    assert client.get(f"{BASE}/acme/fz", headers=admin).json == {
        **DEFAULT_FZ,
        "per_day": 1,
        "on_limit": "defer",
    }
    new = {
        "enabled": False,
        "per_day": 3,
        "per_week": 3,
        "per_month": 3,
        "weekday_hours": {"from": "00:00", "to": "24:00"},
        "weekend_hours": {"from": "10:00", "to": "18:00"},
        "holidays_as_weekends": False,
        "on_limit": "defer",
        "limit_group": "g1",
        "rolling_windows": True,
        "unknown_zone": "strictest",
        "identification": "off",
    }
    r = client.put(f"{BASE}/acme/fz", json=new, headers=admin)
    assert (r.status_code, r.json) == (200, new)
    assert client.get(f"{BASE}/acme", headers=admin).json["fz"] == new
    # a field left out takes the law's default
    r = client.put(f"{BASE}/acme/fz", json={"per_day": 1}, headers=admin)
    assert r.json == {**DEFAULT_FZ, "per_day": 1}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"per_day": -1}, {"per_day": "too_small"}),
        ({"per_week": -1}, {"per_week": "too_small"}),
        ({"per_day": 3, "per_week": 2, "per_month": 2}, {"per_week": "limit_below_shorter_period"}),
        ({"per_day": 1, "per_week": 3, "per_month": 2}, {"per_month": "limit_below_shorter_period"}),
        ({"weekday_hours": {"from": "25:00", "to": "22:00"}}, {"weekday_hours.from": "invalid_time"}),
        ({"weekday_hours": {"from": "20:00", "to": "08:00"}}, {"weekday_hours": "crosses_midnight"}),
        ({"weekend_hours": {"from": "24:00", "to": "24:00"}}, {"weekend_hours.from": "invalid_time"}),
        ({"on_limit": "wait"}, {"on_limit": "invalid_value"}),
        ({"limit": 2}, {"limit": "unknown_field"}),
    ],
)
def test_fz_put_refuses_bad_settings(client, admin, body, expected):
    assert create(client, admin).status_code == 201
    problem = assert_problem(client.put(f"{BASE}/acme/fz", json=body, headers=admin), 422, "validation_error")
    assert field_codes(problem) == expected
    assert client.get(f"{BASE}/acme/fz", headers=admin).json == DEFAULT_FZ


# --- providers of an entity ---------------------------------------------------------------------------


def test_link_add_update_list_and_remove(client, admin, factory):
    for code in ("p1", "p2", "p3"):
        factory.provider(code=code)
    assert create(client, admin).status_code == 201
    r = client.put(f"{BASE}/acme/providers/p1", json={"priority": 2, "sender": "ACME"}, headers=admin)
    assert (r.status_code, r.json) == (
        201,
        {"provider": "p1", "priority": 2, "sender": "ACME", "enabled": True},
    )
    assert r.headers["Location"] == f"{BASE}/acme/providers/p1"
    r = client.put(f"{BASE}/acme/providers/p2", json={"priority": 1}, headers=admin)
    assert (r.status_code, r.json) == (
        201,
        {"provider": "p2", "priority": 1, "sender": None, "enabled": True},
    )
    r = client.put(f"{BASE}/acme/providers/p3", headers=admin)  # no body: after the last one
    assert (r.status_code, r.json) == (
        201,
        {"provider": "p3", "priority": 3, "sender": None, "enabled": True},
    )
    listed = client.get(f"{BASE}/acme/providers", headers=admin).json
    assert [x["provider"] for x in listed["items"]] == ["p2", "p1", "p3"]
    # update: the fields left out keep their values
    r = client.put(f"{BASE}/acme/providers/p1", json={"enabled": False}, headers=admin)
    assert (r.status_code, r.json) == (
        200,
        {"provider": "p1", "priority": 2, "sender": "ACME", "enabled": False},
    )
    r = client.put(f"{BASE}/acme/providers/p1", json={"sender": None, "priority": 1}, headers=admin)
    assert (r.status_code, r.json) == (
        200,
        {"provider": "p1", "priority": 1, "sender": None, "enabled": False},
    )
    assert client.get(f"{BASE}/acme/providers/p1", headers=admin).json == r.json
    # equal priorities: in the order they were linked (p1 before p2)
    listed = client.get(f"{BASE}/acme/providers", headers=admin).json
    assert [x["provider"] for x in listed["items"]] == ["p1", "p2", "p3"]
    assert client.get(f"{BASE}/acme", headers=admin).json["providers"] == listed["items"]
    r = client.delete(f"{BASE}/acme/providers/p1", headers=admin)
    assert (r.status_code, r.data) == (204, b"")
    assert_problem(client.delete(f"{BASE}/acme/providers/p1", headers=admin), 404, "not_found")
    assert_problem(client.get(f"{BASE}/acme/providers/p1", headers=admin), 404, "not_found")
    assert [x["provider"] for x in client.get(f"{BASE}/acme/providers", headers=admin).json["items"]] == [
        "p2",
        "p3",
    ]


def test_a_link_tells_the_sender(client, admin, factory):
    from smsqueue import entity_cache

    factory.provider(code="p1")
    assert create(client, admin).status_code == 201
    assert entity_cache.entity("acme").linked == {}
    client.put(f"{BASE}/acme/providers/p1", json={}, headers=admin)
    assert set(entity_cache.entity("acme").linked) == {"p1"}  # the cache was told at once
    client.delete(f"{BASE}/acme/providers/p1", headers=admin)
    assert entity_cache.entity("acme").linked == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"priority": 0}, {"priority": "too_small"}),
        ({"priority": 1001}, {"priority": "too_large"}),
        ({"priority": "1"}, {"priority": "invalid_type"}),
        ({"priority": None}, {"priority": "invalid_type"}),
        ({"sender": "A sender name that is far too long"}, {"sender": "invalid_sender"}),
        ({"sender": "Отправитель"}, {"sender": "invalid_sender"}),
        ({"enabled": "no"}, {"enabled": "invalid_type"}),
        ({"provider": "p1"}, {"provider": "unknown_field"}),
    ],
)
def test_link_put_refuses_bad_input(client, admin, factory, body, expected):
    factory.provider(code="p1")
    assert create(client, admin).status_code == 201
    problem = assert_problem(
        client.put(f"{BASE}/acme/providers/p1", json=body, headers=admin), 422, "validation_error"
    )
    assert field_codes(problem) == expected
    assert client.get(f"{BASE}/acme/providers", headers=admin).json == {"items": []}


def test_link_to_an_unknown_provider_is_404(client, admin):
    assert create(client, admin).status_code == 201
    assert_problem(client.put(f"{BASE}/acme/providers/nope", json={}, headers=admin), 404, "not_found")
    assert_problem(client.delete(f"{BASE}/acme/providers/nope", headers=admin), 404, "not_found")
    assert_problem(
        client.get(f"{BASE}/acme/providers/nope/check?to={PHONE}", headers=admin), 404, "not_found"
    )


# --- the check ----------------------------------------------------------------------------------------


def check(client, admin, provider="p1", code="acme", **params):
    return client.get(f"{BASE}/{code}/providers/{provider}/check", query_string={"to": PHONE, **params},
                      headers=admin)  # fmt: skip


WEDNESDAY_NOON_MSK = "2026-11-25T12:00:00+03:00"


def test_check_allowed(client, admin, factory):
    factory.provider(code="p1")
    assert create(client, admin, providers=[{"provider": "p1"}]).status_code == 201
    r = check(client, admin, at=WEDNESDAY_NOON_MSK)
    assert r.status_code == 200
    assert r.json == {"allowed": True, "reasons": [], "next_allowed_at": None,
                      "counts": NONE_COUNTED}  # fmt: skip


def test_check_outside_the_window_gives_the_next_allowed_minute(client, admin, factory):
    factory.provider(code="p1")
    assert create(client, admin, providers=[{"provider": "p1"}]).status_code == 201
    r = check(client, admin, at="2026-11-27T21:59:00+03:00")  # Friday 21:59 Moscow
    assert r.json == {
        "allowed": False,
        "reasons": ["outside_send_window"],
        "next_allowed_at": "2026-11-28T06:00:00Z",  # Saturday 09:00 Moscow
        "counts": NONE_COUNTED,
    }
    # the recipient's zone: 12:00 in Moscow is 19:00 in Vladivostok (inside); 15:30 is 22:30 (outside)
    assert (
        check(client, admin, at=WEDNESDAY_NOON_MSK, recipient_timezone="Asia/Vladivostok").json["allowed"]
        is True
    )
    r = check(client, admin, at="2026-11-25T15:30:00+03:00", recipient_timezone="Asia/Vladivostok")
    assert (r.json["reasons"], r.json["next_allowed_at"]) == (["outside_send_window"], "2026-11-25T23:00:00Z")
    # a Vladivostok landline is judged in its own zone without being told
    r = check(client, admin, to="+74232123456", at="2026-11-25T15:30:00+03:00")
    assert r.json["next_allowed_at"] == "2026-11-25T23:00:00Z"


def test_check_provider_not_allowed_and_entity_inactive(client, admin, factory):
    factory.provider(code="p1")
    factory.provider(code="p2")
    factory.provider(code="off", enabled=False)
    assert create(client, admin, providers=[{"provider": "p1"}, {"provider": "off"}]).status_code == 201
    assert check(client, admin, provider="p2", at=WEDNESDAY_NOON_MSK).json["reasons"] == [
        "provider_not_allowed"
    ]
    assert check(client, admin, provider="off", at=WEDNESDAY_NOON_MSK).json["reasons"] == [
        "provider_not_allowed"
    ]
    client.put(f"{BASE}/acme/providers/p1", json={"enabled": False}, headers=admin)
    r = check(client, admin, provider="p1", at=WEDNESDAY_NOON_MSK)
    assert r.json["reasons"] == ["provider_not_allowed"]
    # next_allowed_at reflects the time rules only (allowed right then)
    assert r.json["next_allowed_at"] == "2026-11-25T09:00:00Z"
    client.put(f"{BASE}/acme/providers/p1", json={"enabled": True}, headers=admin)
    client.delete(f"{BASE}/acme", headers=admin)
    r = check(client, admin, provider="p1", at="2026-11-25T23:00:00+03:00")
    assert r.json["allowed"] is False
    assert r.json["reasons"] == ["entity_inactive", "outside_send_window"]
    assert r.json["next_allowed_at"] == "2026-11-26T06:00:00Z"


def test_check_next_allowed_is_null_when_nothing_opens_within_14_days(client, admin, factory):
    factory.provider(code="p1")
    body = {"providers": [{"provider": "p1"}], "send_window": {"from": "23:00", "to": "06:00"}}
    assert create(client, admin, **body).status_code == 201
    r = check(client, admin, at=WEDNESDAY_NOON_MSK)
    assert (r.json["allowed"], r.json["reasons"], r.json["next_allowed_at"]) == (
        False,
        ["outside_send_window"],
        None,
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"to": "12345"}, {"to": "invalid_phone"}),
        ({"to": "+77012345678"}, {"to": "invalid_phone"}),  # Kazakhstan
        ({"to": None}, {"to": "required"}),
        ({"at": "tomorrow"}, {"at": "invalid_datetime"}),
        ({"at": "2026-11-25T12:00:00"}, {"at": "invalid_datetime"}),  # no offset
        ({"recipient_timezone": "Moon/Base"}, {"recipient_timezone": "invalid_timezone"}),
        ({"colour": "red"}, {"colour": "unknown_field"}),
    ],
)
def test_check_refuses_bad_queries(client, admin, factory, params, expected):
    factory.provider(code="p1")
    assert create(client, admin, providers=[{"provider": "p1"}]).status_code == 201
    query = {"to": PHONE, **params}
    query = {k: v for k, v in query.items() if v is not None}
    r = client.get(f"{BASE}/acme/providers/p1/check", query_string=query, headers=admin)
    assert field_codes(assert_problem(r, 422, "validation_error")) == expected


def test_check_counts_what_the_sender_counted(client, admin, factory, simulator):
    factory.provider(simulator.url, code="p1")
    body = {
        "providers": [{"provider": "p1"}],
        "send_window": {"from": "00:00", "to": "24:00"},
        "fz": {"per_day": 1, "weekday_hours": {"from": "00:00", "to": "24:00"},
               "weekend_hours": {"from": "00:00", "to": "24:00"}},
    }  # fmt: skip
    assert create(client, admin, **body).status_code == 201
    headers = factory.headers("acme")
    ids = [client.post("/api/v1/messages", json={"to": PHONE, "text": f"m{i}"}, headers=headers).json["id"]
           for i in range(2)]  # fmt: skip
    send_now([_pk(i) for i in ids])
    statuses = sorted(client.get(f"/api/v1/messages/{i}", headers=headers).json["status"] for i in ids)
    assert statuses == ["rejected", "sent"]
    r = check(client, admin, at=datetime.now(UTC).isoformat())
    assert r.json["counts"] == {
        "day": 1,
        "week": 1,
        "month": 1,
        "rolling_24h": 1,
        "rolling_7d": 1,
        "rolling_30d": 1,
    }
    assert r.json["reasons"] == ["fz_daily_limit"]
    assert len(simulator.received()) == 1
    # another number, or a year ago, counts nothing
    assert check(client, admin, to="+79161234568").json["counts"] == NONE_COUNTED
    assert check(client, admin, at="2025-01-15T12:00:00Z").json["counts"] == NONE_COUNTED


# --- the OpenAPI document -----------------------------------------------------------------------------


def test_every_operation_is_declared_for_the_openapi_document():
    from smsqueue.api.spec import OPERATIONS
    from smsqueue.web import create_app

    create_app()  # the views declare their operations as the app imports them (whatever ran before)

    declared = {(op.method, op.path) for op in OPERATIONS if op.path.startswith(BASE)}
    assert declared >= {
        ("get", BASE),
        ("post", BASE),
        ("get", f"{BASE}/{{code}}"),
        ("patch", f"{BASE}/{{code}}"),
        ("delete", f"{BASE}/{{code}}"),
        ("get", f"{BASE}/{{code}}/send-window"),
        ("put", f"{BASE}/{{code}}/send-window"),
        ("get", f"{BASE}/{{code}}/fz"),
        ("put", f"{BASE}/{{code}}/fz"),
        ("get", f"{BASE}/{{code}}/providers"),
        ("put", f"{BASE}/{{code}}/providers/{{provider}}"),
        ("delete", f"{BASE}/{{code}}/providers/{{provider}}"),
        ("get", f"{BASE}/{{code}}/providers/{{provider}}/check"),
    }
    for op in OPERATIONS:
        if op.path.startswith(BASE) and "webhook" not in op.path:
            # API.md: entity keys may read their entities' templates (and send with them); the rest is admin
            reads_templates = "/templates" in op.path and op.method == "get"
            assert op.auth == ("any" if reads_templates else "admin") and op.description, op.path
