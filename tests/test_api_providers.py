"""The providers admin API against a real PostgreSQL: create, list, read, edit, disable, delete, balance;
the JSON of API.md, secrets encrypted at rest and masked in every answer, every bad input's status and
code, and the settings every call then uses."""

from __future__ import annotations

import typing
import uuid

import pytest
from sqlalchemy import select

from smsqueue import sending
from smsqueue.api.provider_schemas import ProviderKind
from smsqueue.crypto import decrypt, decrypt_json
from smsqueue.db import transaction
from smsqueue.models import Message, Provider
from smsqueue.providers import KINDS
from smsqueue.providers.simulator import Simulator

BASE = "/api/v1/providers"
PASSWORD = "pw-" + uuid.uuid4().hex


@pytest.fixture
def admin(factory):
    return factory.headers()


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    body = response.json
    assert (body["status"], body["code"], body["type"]) == (status, code, "about:blank")
    return body


def field_codes(body: dict) -> dict[str, str]:
    return {e["field"]: e["code"] for e in body["errors"]}


def create(client, headers, **body):
    payload = {
        "code": "smsc-main",
        "kind": "smsc",
        "name": "SMSC main account",
        "settings": {"base_url": "https://smsc.ru", "login": "acme", "password": PASSWORD},
        "rate_limit_per_second": 50,
        "timeout_seconds": 10,
        **body,
    }
    return client.post(BASE, json=payload, headers=headers)


def stored(code: str) -> Provider:
    with transaction() as conn:
        return conn.execute(select(Provider.__table__).where(Provider.code == code)).one()


# --- create and read ----------------------------------------------------------------------------------


def test_create_answers_201_with_the_api_json_the_token_once_and_secrets_masked(client, admin):
    r = create(client, admin)
    assert r.status_code == 201, r.json
    assert r.headers["Location"] == f"{BASE}/smsc-main"
    body = r.json
    token = body.pop("callback_token")
    assert body == {
        "code": "smsc-main",
        "kind": "smsc",
        "name": "SMSC main account",
        "enabled": True,
        "settings": {"base_url": "https://smsc.ru", "login": "acme", "password": "***"},
        "rate_limit_per_second": 50,
        "timeout_seconds": 10,
        "paused_until": None,
        "pause_reason": None,
    }
    assert len(token) >= 32 and token != "***"
    row = stored("smsc-main")
    # At rest: the password only inside the encrypted secrets, the token encrypted.
    assert row.settings == {"base_url": "https://smsc.ru", "login": "acme"}
    assert PASSWORD not in row.secrets and decrypt_json(row.secrets) == {"password": PASSWORD}
    assert token not in row.callback_token and decrypt(row.callback_token) == token
    read = client.get(f"{BASE}/smsc-main", headers=admin)
    assert read.status_code == 200
    assert read.json == {**body, "callback_token": "***"}


def test_a_given_callback_token_is_shown_in_the_201_only(client, admin):
    token = "my-own-token-" + uuid.uuid4().hex
    r = create(client, admin, callback_token=token)
    assert r.status_code == 201 and r.json["callback_token"] == token
    assert decrypt(stored("smsc-main").callback_token) == token
    assert client.get(f"{BASE}/smsc-main", headers=admin).json["callback_token"] == "***"
    assert client.get(BASE, headers=admin).json["items"][0]["callback_token"] == "***"


def test_defaults_and_every_kind(client, admin):
    bodies = {
        "a-smsru": {"kind": "smsru", "settings": {"api_id": "k" * 10}},
        "b-aero": {"kind": "smsaero", "settings": {"email": "a@b.ru", "api_key": "key"}},
        "c-json": {"kind": "http_json", "settings": {"url": "https://x.example/send", "token": "Bearer t"}},
        "d-smsc-apikey": {"kind": "smsc", "settings": {"apikey": "key", "sender": "ACME"}},
        "e-traffic": {"kind": "smstraffic", "settings": {"login": "acme", "password": "pw"}},
        "f-iqsms": {
            "kind": "iqsms",
            "settings": {"login": "acme", "password": "pw", "status_queue": "acme01"},
        },
    }
    for code, body in bodies.items():
        r = client.post(BASE, json={"code": code, **body}, headers=admin)
        assert r.status_code == 201, r.json
    items = client.get(BASE, headers=admin).json["items"]
    assert [i["code"] for i in items] == sorted(bodies)
    assert items[0] == {
        "code": "a-smsru",
        "kind": "smsru",
        "name": "a-smsru",
        "enabled": True,
        "settings": {"api_id": "***"},
        "rate_limit_per_second": None,
        "timeout_seconds": 10,
        "callback_token": "***",
        "paused_until": None,
        "pause_reason": None,
    }
    assert items[1]["settings"] == {"email": "a@b.ru", "api_key": "***"}
    assert items[2]["settings"] == {"url": "https://x.example/send", "token": "***"}
    assert items[3]["settings"] == {"sender": "ACME", "apikey": "***"}
    assert items[4]["settings"] == {"login": "acme", "password": "***"}
    assert items[5]["settings"] == {"login": "acme", "status_queue": "acme01", "password": "***"}
    assert "pw" not in str(client.get(f"{BASE}/e-traffic", headers=admin).json["settings"].values())


def test_unknown_provider_is_404(client, admin):
    assert_problem(client.get(f"{BASE}/nope", headers=admin), 404, "not_found")
    assert_problem(client.patch(f"{BASE}/nope", json={}, headers=admin), 404, "not_found")
    assert_problem(client.delete(f"{BASE}/nope", headers=admin), 404, "not_found")
    assert_problem(client.get(f"{BASE}/nope/balance", headers=admin), 404, "not_found")


def test_entity_keys_get_403_and_no_key_401(client, factory):
    provider = factory.provider()
    entity = factory.entity(provider)
    headers = factory.headers(entity)
    calls = [
        ("get", BASE, None),
        ("post", BASE, {"code": "x", "kind": "smsc", "settings": {"apikey": "k"}}),
        ("get", f"{BASE}/{provider.code}", None),
        ("patch", f"{BASE}/{provider.code}", {"enabled": False}),
        ("delete", f"{BASE}/{provider.code}", None),
        ("get", f"{BASE}/{provider.code}/balance", None),
    ]
    for method, url, body in calls:
        assert_problem(getattr(client, method)(url, json=body, headers=headers), 403, "forbidden")
        assert_problem(getattr(client, method)(url, json=body), 401, "unauthorized")
    assert stored(provider.code).enabled is True


# --- validation ---------------------------------------------------------------------------------------


def test_a_422_lists_every_invalid_field_settings_included(client, admin):
    r = client.post(
        BASE,
        json={
            "code": "Bad Code!",
            "kind": "smsru",
            "settings": {"base_url": "ftp://x", "api_id": "", "colour": "red", "sender": 5},
            "rate_limit_per_second": 0,
            "timeout_seconds": 61,
            "callback_token": "short",
            "extra": 1,
        },
        headers=admin,
    )
    body = assert_problem(r, 422, "validation_error")
    assert field_codes(body) == {
        "code": "invalid_value",
        "rate_limit_per_second": "too_small",
        "timeout_seconds": "too_large",
        "callback_token": "invalid_value",
        "extra": "unknown_field",
        "settings.base_url": "invalid_url",
        "settings.api_id": "required",
        "settings.colour": "unknown_field",
        "settings.sender": "invalid_type",
    }
    assert client.get(BASE, headers=admin).json["items"] == []


@pytest.mark.parametrize(
    ("kind", "settings", "errors"),
    [
        ("smsc", {}, {"settings.login": "required", "settings.password": "required"}),
        ("smsc", {"login": "a", "password": "***"}, {"settings.password": "invalid_value"}),
        ("smsc", {"login": ["a"], "password": "p"}, {"settings.login": "invalid_type"}),
        ("smsru", {"api_id": "k", "base_url": "not a url"}, {"settings.base_url": "invalid_url"}),
        ("smsaero", {"email": "nobody", "api_key": "k"}, {"settings.email": "required"}),
        ("http_json", {"token": "t"}, {"settings.url": "invalid_url"}),
        (
            "smstraffic",
            {"login": "a", "reserve_url": "ftp://x", "apikey": "k"},
            {
                "settings.password": "required",
                "settings.reserve_url": "invalid_url",
                "settings.apikey": "unknown_field",
            },
        ),
        ("smstraffic", {"login": "a", "password": "***"}, {"settings.password": "invalid_value"}),
        (
            "iqsms",
            {"login": "a", "password": "p", "status_queue": "no-dashes"},
            {"settings.status_queue": "invalid_value"},
        ),
        (
            "iqsms",
            {"password": "p", "base_url": "x"},
            {"settings.login": "required", "settings.base_url": "invalid_url"},
        ),
        (
            "http_json",
            {"url": "https://x/s", "status_url": "https://x/"},
            {"settings.status_url": "invalid_url"},
        ),
    ],
)
def test_settings_are_checked_by_the_kinds_client(client, admin, kind, settings, errors):
    r = client.post(BASE, json={"code": "p1", "kind": kind, "settings": settings}, headers=admin)
    assert field_codes(assert_problem(r, 422, "validation_error")) == errors


def test_kind_must_be_a_built_in_client(client, admin):
    r = client.post(BASE, json={"code": "p1", "kind": "twilio", "settings": {"a": "b"}}, headers=admin)
    assert field_codes(assert_problem(r, 422, "validation_error")) == {"kind": "invalid_value"}
    assert set(typing.get_args(ProviderKind)) == set(KINDS)


def test_required_fields_nulls_types_and_bodies(client, admin):
    body = assert_problem(client.post(BASE, json={}, headers=admin), 422, "validation_error")
    assert field_codes(body) == {"code": "required", "kind": "required"}
    r = client.post(
        BASE,
        json={"code": "p1", "kind": "smsc", "settings": None, "enabled": "yes", "timeout_seconds": "5"},
        headers=admin,
    )
    assert field_codes(assert_problem(r, 422, "validation_error")) == {
        "settings": "invalid_type",
        "enabled": "invalid_type",
        "timeout_seconds": "invalid_type",
    }
    assert_problem(
        client.post(BASE, data="{", content_type="application/json", headers=admin), 400, "bad_json"
    )
    assert_problem(client.post(BASE, json=[1], headers=admin), 400, "bad_json")
    assert_problem(client.post(BASE, data="x=1", headers=admin), 415, "unsupported_media_type")


def test_a_duplicate_code_is_409(client, admin):
    assert create(client, admin).status_code == 201
    assert_problem(create(client, admin), 409, "conflict")


# --- edit ---------------------------------------------------------------------------------------------


def test_patch_changes_what_is_given_and_keeps_secrets_left_out(client, admin):
    assert create(client, admin).status_code == 201
    r = client.patch(
        f"{BASE}/smsc-main",
        json={"name": "Renamed", "settings": {"login": "other"}, "rate_limit_per_second": None},
        headers=admin,
    )
    assert r.status_code == 200, r.json
    assert r.json == {
        "code": "smsc-main",
        "kind": "smsc",
        "name": "Renamed",
        "enabled": True,
        "settings": {"base_url": "https://smsc.ru", "login": "other", "password": "***"},
        "rate_limit_per_second": None,
        "timeout_seconds": 10,
        "callback_token": "***",
        "paused_until": None,
        "pause_reason": None,
    }
    assert decrypt_json(stored("smsc-main").secrets) == {"password": PASSWORD}
    # What GET gives can be sent back as it is: "***" keeps the secret.
    back = client.get(f"{BASE}/smsc-main", headers=admin).json
    r = client.patch(
        f"{BASE}/smsc-main", json={"settings": back["settings"], "timeout_seconds": 2.5}, headers=admin
    )
    assert r.status_code == 200 and r.json["timeout_seconds"] == 2.5
    assert decrypt_json(stored("smsc-main").secrets) == {"password": PASSWORD}
    # A new secret replaces the old one; null removes a key.
    r = client.patch(
        f"{BASE}/smsc-main", json={"settings": {"password": "new-pw", "base_url": None}}, headers=admin
    )
    assert r.json["settings"] == {"login": "other", "password": "***"}
    assert decrypt_json(stored("smsc-main").secrets) == {"password": "new-pw"}
    assert stored("smsc-main").settings == {"login": "other"}


def test_patch_checks_the_merged_settings_and_refuses_what_cannot_change(client, admin):
    assert create(client, admin).status_code == 201
    r = client.patch(
        f"{BASE}/smsc-main",
        json={"settings": {"login": None, "api_id": "x"}, "code": "other", "kind": "smsru", "name": None},
        headers=admin,
    )
    assert field_codes(assert_problem(r, 422, "validation_error")) == {
        "settings.login": "required",
        "settings.api_id": "unknown_field",
        "code": "invalid_value",
        "kind": "invalid_value",
        "name": "invalid_type",
    }
    row = stored("smsc-main")
    assert (
        row.settings == {"base_url": "https://smsc.ru", "login": "acme"} and row.name == "SMSC main account"
    )
    # Its own code and kind may be given.
    r = client.patch(f"{BASE}/smsc-main", json={"code": "smsc-main", "kind": "smsc"}, headers=admin)
    assert r.status_code == 200


def test_patch_a_new_callback_token_replaces_the_old_one(client, admin):
    assert create(client, admin, callback_token="first-token-0123456789").status_code == 201
    r = client.patch(f"{BASE}/smsc-main", json={"callback_token": "***"}, headers=admin)
    assert r.status_code == 200 and decrypt(stored("smsc-main").callback_token) == "first-token-0123456789"
    r = client.patch(f"{BASE}/smsc-main", json={"callback_token": "second-token-0123456789"}, headers=admin)
    assert r.status_code == 200 and r.json["callback_token"] == "***"
    assert decrypt(stored("smsc-main").callback_token) == "second-token-0123456789"
    form = {"id": "1", "phone": "79161234567", "status": "1"}
    old = client.post(f"{BASE}/smsc-main/dlr?token=first-token-0123456789", data=form)
    assert_problem(old, 403, "forbidden")
    assert client.post(f"{BASE}/smsc-main/dlr?token=second-token-0123456789", data=form).status_code == 200


def test_disabled_provider_takes_no_send_and_the_next_one_does(client, factory, admin, simulator):
    with Simulator(kind="smsc") as second:
        first = factory.provider(simulator.url)
        other = factory.provider(second.url)
        entity = factory.entity(first, other)
        r = client.patch(f"{BASE}/{first.code}", json={"enabled": False}, headers=admin)
        assert r.status_code == 200 and r.json["enabled"] is False
        mid = client.post(
            "/api/v1/messages", json={"to": "+79161234567", "text": "hi"}, headers=factory.headers(entity)
        ).json["id"]
        sending.process([pk_of(mid)])
        assert (simulator.received(), len(second.received())) == ([], 1)
        assert message(mid).provider_id == other.id
        assert client.patch(f"{BASE}/{first.code}", json={"enabled": True}, headers=admin).json["enabled"]


def test_every_call_uses_the_settings_stored_last(client, factory, admin):
    with Simulator(kind="smsc") as one, Simulator(kind="smsc") as two:
        provider = factory.provider(one.url)
        entity = factory.entity(provider)
        headers = factory.headers(entity)
        first = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "1"}, headers=headers)
        sending.process([pk_of(first.json["id"])])
        r = client.patch(f"{BASE}/{provider.code}", json={"settings": {"base_url": two.url}}, headers=admin)
        assert r.status_code == 200
        second = client.post("/api/v1/messages", json={"to": "+79161234567", "text": "2"}, headers=headers)
        sending.process([pk_of(second.json["id"])])
        assert ([m.text for m in one.received()], [m.text for m in two.received()]) == (["1"], ["2"])


# --- delete -------------------------------------------------------------------------------------------


def test_delete_an_unused_provider_is_204(client, admin):
    assert create(client, admin).status_code == 201
    r = client.delete(f"{BASE}/smsc-main", headers=admin)
    assert r.status_code == 204 and r.data == b""
    assert_problem(client.get(f"{BASE}/smsc-main", headers=admin), 404, "not_found")


def test_delete_of_a_provider_an_entity_or_a_message_refers_to_is_409(client, factory, admin):
    linked = factory.provider(code="linked")
    entity = factory.entity(linked)
    body = assert_problem(client.delete(f"{BASE}/linked", headers=admin), 409, "conflict")
    assert "legal entities" in body["detail"] and "disable it instead" in body["detail"]
    # Unlinked, but a message still asked for it: kept.
    r = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "text": "x", "provider": "linked"},
        headers=factory.headers(entity),
    )
    assert r.status_code == 202
    assert (
        client.delete(f"/api/v1/legal-entities/{entity.code}/providers/linked", headers=admin).status_code
        == 204
    )
    body = assert_problem(client.delete(f"{BASE}/linked", headers=admin), 409, "conflict")
    assert "messages" in body["detail"]
    assert client.get(f"{BASE}/linked", headers=admin).status_code == 200


# --- balance ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["smsc", "smsru", "smsaero", "smstraffic", "iqsms"])
def test_balance_asks_the_provider(client, factory, admin, kind):
    with Simulator(kind=kind, behaviour={"balance": 100.01}) as sim:
        base_url = sim.url + "/v2" if kind == "smsaero" else sim.url
        provider = factory.provider(base_url, kind=kind)
        r = client.get(f"{BASE}/{provider.code}/balance", headers=admin)
    assert r.status_code == 200, r.json
    assert r.json == {"balance": 100.01, "currency": "RUB"}


def test_balance_failures_are_502(client, factory, admin):
    with Simulator(kind="smsc", login="acme", password="right") as sim:
        wrong = factory.provider(
            sim.url, settings={"base_url": sim.url, "login": "acme", "password": "wrong"}
        )
        body = assert_problem(
            client.get(f"{BASE}/{wrong.code}/balance", headers=admin), 502, "provider_error"
        )
        assert "provider_error:2" in body["detail"]
        sim.set_behaviour(fail_http=500, affects=["balance"])
        right = factory.provider(
            sim.url, settings={"base_url": sim.url, "login": "acme", "password": "right"}
        )
        body = assert_problem(
            client.get(f"{BASE}/{right.code}/balance", headers=admin), 502, "provider_error"
        )
        assert "http_500" in body["detail"]
    down = factory.provider("http://127.0.0.1:9")
    assert_problem(client.get(f"{BASE}/{down.code}/balance", headers=admin), 502, "provider_error")
    generic = factory.provider("http://127.0.0.1:9", kind="http_json")
    body = assert_problem(client.get(f"{BASE}/{generic.code}/balance", headers=admin), 502, "provider_error")
    assert "balance_unsupported" in body["detail"]


# --- the OpenAPI document -----------------------------------------------------------------------------


def test_every_operation_is_declared_admin_only_and_described():
    from smsqueue.api.spec import OPERATIONS

    declared = {(op.method, op.path): op for op in OPERATIONS if op.path.startswith(BASE)}
    admin_ops = {
        ("get", BASE),
        ("post", BASE),
        ("get", f"{BASE}/{{code}}"),
        ("patch", f"{BASE}/{{code}}"),
        ("delete", f"{BASE}/{{code}}"),
        ("get", f"{BASE}/{{code}}/balance"),
    }
    dlr_ops = {("get", f"{BASE}/{{code}}/dlr"), ("post", f"{BASE}/{{code}}/dlr")}
    assert set(declared) == admin_ops | dlr_ops
    assert all(declared[k].auth == "admin" and declared[k].description for k in admin_ops)
    assert all(declared[k].auth == "none" and declared[k].description for k in dlr_ops)


# --- helpers ------------------------------------------------------------------------------------------


def message(mid: str):
    with transaction() as conn:
        return conn.execute(select(Message.__table__).where(Message.id == uuid.UUID(mid))).one()


def pk_of(mid: str) -> int:
    return message(mid).pk
