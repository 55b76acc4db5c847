"""The messages API against a real PostgreSQL: accepting, reading, listing, cancelling, idempotency, entity
isolation and every kind of bad input of API.md (each its status and code, never a 500)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from smsqueue.db import transaction
from smsqueue.models import Message, MessageEvent

PHONE = "+79161234567"


@pytest.fixture
def acme(factory):
    return factory.entity(factory.provider(), code="acme", sender="ACME")


@pytest.fixture
def headers(factory, acme):
    return factory.headers(acme)


def count_messages() -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(Message)).scalar_one()


def post(client, headers, body, path="/api/v1/messages", **kw):
    return client.post(path, json=body, headers=headers, **kw)


def assert_problem(response, status: int, code: str):
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    body = response.json
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "about:blank"
    assert body["title"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def field_codes(body) -> dict[str, str]:
    return {e["field"]: e["code"] for e in body["errors"]}


# --- accepting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["+79161234567", "89161234567", "8 (916) 123-45-67", "79161234567"])
def test_accepts_common_phone_forms_and_stores_e164(client, headers, raw):
    r = post(client, headers, {"to": raw, "text": "Hello"})
    assert r.status_code == 202
    assert r.json["to"] == PHONE


def test_accepted_message_has_the_documented_shape(client, headers):
    r = post(client, headers, {"to": PHONE, "text": "Hello", "reference": "inv-42", "sender": "ACME2"})
    assert r.status_code == 202
    body = r.json
    assert r.headers["Location"] == f"/api/v1/messages/{body['id']}"
    uuid.UUID(body["id"])
    expected = {
        "legal_entity": "acme",
        "to": PHONE,
        "text": "Hello",
        "sender": "ACME2",
        "status": "queued",
        "reason": None,
        "provider": None,
        "provider_message_id": None,
        "segments": 1,
        "encoding": "GSM-7",
        "send_at": None,
        "valid_until": None,
        "reference": "inv-42",
    }
    assert {k: body[k] for k in expected} == expected
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert body["events"] == [{"status": "queued", "at": body["created_at"], "reason": None}]
    # what GET says is what POST said
    got = client.get(f"/api/v1/messages/{body['id']}", headers=headers).json
    assert got == body


def test_segments_and_encoding(client, headers):
    cyrillic = post(client, headers, {"to": PHONE, "text": "Ж" * 71}).json
    assert (cyrillic["encoding"], cyrillic["segments"]) == ("UCS-2", 2)
    latin = post(client, headers, {"to": PHONE, "text": "a" * 160}).json
    assert (latin["encoding"], latin["segments"]) == ("GSM-7", 1)
    extended = post(client, headers, {"to": PHONE, "text": "€" * 81}).json
    assert (extended["encoding"], extended["segments"]) == ("GSM-7", 2)


def test_send_at_in_the_future_is_scheduled(client, headers):
    send_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    r = post(client, headers, {"to": PHONE, "text": "later", "send_at": send_at.isoformat()})
    assert r.status_code == 202
    assert r.json["status"] == "scheduled"
    assert r.json["send_at"] == send_at.isoformat().replace("+00:00", "Z")


def test_send_at_with_an_offset_is_kept_as_the_same_instant(client, headers):
    utc = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    moscow = utc.astimezone(timezone(timedelta(hours=3)))
    r = post(client, headers, {"to": PHONE, "text": "x", "send_at": moscow.isoformat()})
    assert moscow.isoformat().endswith("+03:00")
    assert r.json["send_at"] == utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_legal_entity_is_required_when_the_key_has_several(client, factory, acme):
    other = factory.entity(factory.provider())
    headers = factory.headers(acme, other)
    body = assert_problem(post(client, headers, {"to": PHONE, "text": "x"}), 422, "validation_error")
    assert field_codes(body) == {"legal_entity": "required"}
    assert post(client, headers, {"legal_entity": other.code, "to": PHONE, "text": "x"}).status_code == 202


def test_admin_key_must_name_the_entity(client, factory, acme):
    admin = factory.headers()
    assert_problem(post(client, admin, {"to": PHONE, "text": "x"}), 422, "validation_error")
    r = post(client, admin, {"legal_entity": "acme", "to": PHONE, "text": "x"})
    assert r.status_code == 202 and r.json["legal_entity"] == "acme"


def test_entity_callback_url_is_the_default(client, factory):
    entity = factory.entity(factory.provider(), callback_url="https://hooks.example/sms")
    headers = factory.headers(entity)
    assert (
        post(client, headers, {"to": PHONE, "text": "x"}).json["callback_url"] == "https://hooks.example/sms"
    )
    own = post(client, headers, {"to": PHONE, "text": "x", "callback_url": "https://mine.example/cb"}).json
    assert own["callback_url"] == "https://mine.example/cb"


def test_provider_must_be_linked_to_the_entity(client, factory, acme, headers):
    unlinked = factory.provider(code="elsewhere")
    body = assert_problem(
        post(client, headers, {"to": PHONE, "text": "x", "provider": unlinked.code}), 422, "validation_error"
    )
    assert field_codes(body) == {"provider": "provider_not_allowed"}
    linked = acme_provider_code(client, headers)
    assert post(client, headers, {"to": PHONE, "text": "x", "provider": linked}).status_code == 202


def acme_provider_code(client, headers) -> str:
    from smsqueue.models import EntityProvider, LegalEntity, Provider

    with transaction() as conn:
        return conn.execute(
            select(Provider.code)
            .join(EntityProvider, EntityProvider.provider_id == Provider.id)
            .join(LegalEntity, LegalEntity.id == EntityProvider.legal_entity_id)
            .where(LegalEntity.code == "acme")
        ).scalar_one()


# --- bad input ----------------------------------------------------------------------------------------


def test_malformed_json_is_400(client, headers):
    r = client.post(
        "/api/v1/messages", data='{"to": ', headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 400, "bad_json")
    assert count_messages() == 0


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "NaN", '{"to": NaN}'])
def test_json_that_is_not_an_object_is_400(client, headers, body):
    r = client.post("/api/v1/messages", data=body, headers={**headers, "Content-Type": "application/json"})
    assert_problem(r, 400, "bad_json")


@pytest.mark.parametrize(
    "ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_wrong_content_type_is_415(client, headers, ctype):
    h = dict(headers)
    if ctype:
        h["Content-Type"] = ctype
    r = client.post("/api/v1/messages", data=json.dumps({"to": PHONE, "text": "x"}), headers=h)
    assert_problem(r, 415, "unsupported_media_type")


def test_oversized_body_is_413(client, headers):
    big = json.dumps({"to": PHONE, "text": "x" * (16 * 1024 * 1024 + 10)})
    r = client.post("/api/v1/messages", data=big, headers={**headers, "Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    assert count_messages() == 0


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("12345", "invalid_phone"),
        ("+77011234567", "invalid_phone"),
        ("+1 202 555 0100", "invalid_phone"),
        ("8-800-FLOWERS", "invalid_phone"),
        ("", "invalid_phone"),
        (79161234567, "invalid_type"),
        (None, "invalid_type"),
    ],
)
def test_invalid_phone_is_422(client, headers, to, code):
    body = assert_problem(post(client, headers, {"to": to, "text": "x"}), 422, "validation_error")
    assert field_codes(body) == {"to": code}


@pytest.mark.parametrize(("text", "code"), [("", "too_short"), ("x" * 1601, "too_long"), (5, "invalid_type")])
def test_empty_or_too_long_text_is_422(client, headers, text, code):
    body = assert_problem(post(client, headers, {"to": PHONE, "text": text}), 422, "validation_error")
    assert field_codes(body) == {"text": code}


def test_text_of_exactly_1600_characters_is_accepted(client, headers):
    assert post(client, headers, {"to": PHONE, "text": "я" * 1600}).status_code == 202


def test_send_at_in_the_past_is_422(client, headers):
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = assert_problem(
        post(client, headers, {"to": PHONE, "text": "x", "send_at": past}), 422, "validation_error"
    )
    assert field_codes(body) == {"send_at": "in_past"}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("send_at", "2026-13-01T00:00:00Z", "invalid_datetime"),
        ("send_at", "tomorrow", "invalid_datetime"),
        ("send_at", "2030-01-01T10:00:00", "invalid_datetime"),
        ("send_at", 1893456000, "invalid_datetime"),
        ("valid_until", "2001-01-01T00:00:00Z", "in_past"),
        ("valid_until", "9999-12-31T23:00:00-05:00", "invalid_datetime"),  # past Python's last year
        ("recipient_timezone", "Mars/Olympus", "invalid_timezone"),
        ("callback_url", "ftp://example.com/x", "invalid_url"),
        ("callback_url", "not a url", "invalid_url"),
        ("reference", "r" * 129, "too_long"),
        ("sender", "THIS-IS-TOO-LONG", "invalid_sender"),
        ("sender", "Отправитель", "invalid_sender"),
        ("nonsense", 1, "unknown_field"),
    ],
)
def test_each_bad_field_has_its_code(client, headers, field, value, code):
    body = assert_problem(
        post(client, headers, {"to": PHONE, "text": "x", field: value}), 422, "validation_error"
    )
    assert field_codes(body) == {field: code}


def test_send_at_more_than_30_days_ahead_is_422(client, headers):
    far = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    body = assert_problem(
        post(client, headers, {"to": PHONE, "text": "x", "send_at": far}), 422, "validation_error"
    )
    assert field_codes(body) == {"send_at": "too_far_ahead"}


def test_an_offset_postgresql_cannot_store_is_normalised_to_utc(client, headers):
    # Python reads offsets up to ±23:59, PostgreSQL stores at most ±15:59 (schemathesis found the 500).
    response = post(client, headers, {"to": PHONE, "text": "x", "valid_until": "6655-08-03T06:12:15-22:33"})
    assert response.status_code == 202, response.get_data(as_text=True)
    message = client.get(f"/api/v1/messages/{response.get_json()['id']}", headers=headers).get_json()
    assert datetime.fromisoformat(message["valid_until"]) == datetime(6655, 8, 4, 4, 45, 15, tzinfo=UTC)


def test_valid_until_before_send_at_is_422(client, headers):
    send_at = datetime.now(UTC) + timedelta(hours=2)
    body = {
        "to": PHONE,
        "text": "x",
        "send_at": send_at.isoformat(),
        "valid_until": (send_at - timedelta(hours=1)).isoformat(),
    }
    problem = assert_problem(post(client, headers, body), 422, "validation_error")
    assert field_codes(problem) == {"valid_until": "invalid_value"}


def test_a_422_lists_every_invalid_field(client, headers):
    body = {"to": "123", "text": "", "send_at": "yesterday", "callback_url": "gopher://x", "extra": True}
    problem = assert_problem(post(client, headers, body), 422, "validation_error")
    assert field_codes(problem) == {
        "to": "invalid_phone",
        "text": "too_short",
        "send_at": "invalid_datetime",
        "callback_url": "invalid_url",
        "extra": "unknown_field",
    }
    assert problem["detail"] == "5 fields are invalid"
    assert all(e["message"] for e in problem["errors"])


def test_missing_fields_are_required(client, headers):
    problem = assert_problem(post(client, headers, {}), 422, "validation_error")
    assert field_codes(problem) == {"to": "required", "text": "required"}


def test_unknown_entity_is_404(client, factory, acme):
    r = post(client, factory.headers(), {"legal_entity": "nobody", "to": PHONE, "text": "x"})
    assert_problem(r, 404, "not_found")
    assert count_messages() == 0


def test_another_entity_is_403_to_an_entity_key(client, factory, acme):
    other = factory.entity(factory.provider())
    r = post(client, factory.headers(other), {"legal_entity": "acme", "to": PHONE, "text": "x"})
    assert_problem(r, 403, "forbidden")


def test_private_callback_url_is_refused_unless_allowed(client, headers, monkeypatch):
    from smsqueue.config import settings

    monkeypatch.setenv("SMSQUEUE_ALLOW_PRIVATE_CALLBACKS", "false")
    settings.cache_clear()
    try:
        for url in (
            "http://127.0.0.1:8080/cb",
            "http://10.1.2.3/cb",
            "http://[::1]/cb",
            "http://169.254.169.254/x",
            "http://localhost/cb",
        ):
            problem = assert_problem(
                post(client, headers, {"to": PHONE, "text": "x", "callback_url": url}),
                422,
                "validation_error",
            )
            assert field_codes(problem) == {"callback_url": "callback_url_not_allowed"}, url
        assert (
            post(
                client, headers, {"to": PHONE, "text": "x", "callback_url": "https://8.8.8.8/cb"}
            ).status_code
            == 202
        )
    finally:
        monkeypatch.undo()
        settings.cache_clear()


def test_idempotency_key_too_long_is_422(client, headers):
    h = {**headers, "Idempotency-Key": "k" * 256}
    r = client.post("/api/v1/messages", json={"to": PHONE, "text": "x"}, headers=h)
    problem = assert_problem(r, 422, "validation_error")
    assert field_codes(problem) == {"Idempotency-Key": "too_long"}


def test_unknown_path_and_method_are_problems(client, headers):
    assert_problem(client.get("/api/v1/nothing-here", headers=headers), 404, "not_found")
    r = client.delete("/api/v1/messages", headers=headers)
    assert_problem(r, 405, "method_not_allowed")


# --- idempotency --------------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_message(client, headers):
    h = {**headers, "Idempotency-Key": "order-1"}
    first = client.post("/api/v1/messages", json={"to": PHONE, "text": "once"}, headers=h)
    again = client.post("/api/v1/messages", json={"to": PHONE, "text": "once"}, headers=h)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert count_messages() == 1


def test_same_key_other_body_is_409(client, headers):
    h = {**headers, "Idempotency-Key": "order-2"}
    assert client.post("/api/v1/messages", json={"to": PHONE, "text": "one"}, headers=h).status_code == 202
    r = client.post("/api/v1/messages", json={"to": PHONE, "text": "two"}, headers=h)
    assert_problem(r, 409, "idempotency_conflict")
    assert count_messages() == 1


def test_idempotency_keys_are_scoped_to_the_entity(client, factory, acme, headers):
    other = factory.entity(factory.provider())
    body = {"to": PHONE, "text": "same"}
    a = client.post("/api/v1/messages", json=body, headers={**headers, "Idempotency-Key": "k"})
    b = client.post("/api/v1/messages", json=body, headers={**factory.headers(other), "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 202
    assert a.json["id"] != b.json["id"]


def test_concurrent_requests_with_one_key_store_one_message(app, headers):
    from concurrent.futures import ThreadPoolExecutor

    def send(_):
        with app.test_client() as c:
            return c.post(
                "/api/v1/messages",
                json={"to": PHONE, "text": "race"},
                headers={**headers, "Idempotency-Key": "race-1"},
            )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(16)))
    assert sorted({a.status_code for a in answers}) in ([200, 202], [202])
    assert len({a.json["id"] for a in answers}) == 1
    assert count_messages() == 1


# --- batch --------------------------------------------------------------------------------------------


def test_batch_accepts_valid_items_and_reports_invalid_ones(client, headers, acme):
    items = [
        {"to": PHONE, "text": "one"},
        {"to": "nope", "text": "two"},
        {"legal_entity": "ghost", "to": PHONE, "text": "three"},
        {"to": PHONE, "text": "four", "idempotency_key": "b-4"},
        {"to": PHONE, "text": "", "bogus": 1},
    ]
    r = post(client, headers, {"messages": items}, path="/api/v1/messages/batch")
    assert r.status_code == 200
    results = r.json["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert results[0]["status"] == "queued" and uuid.UUID(results[0]["id"])
    assert results[3]["status"] == "queued"
    assert "id" not in results[1] and results[1]["error"]["status"] == 422
    assert results[1]["error"]["code"] == "validation_error"
    assert field_codes(results[1]["error"]) == {"to": "invalid_phone"}
    assert results[2]["error"]["status"] == 404 and results[2]["error"]["code"] == "not_found"
    assert field_codes(results[4]["error"]) == {"text": "too_short", "bogus": "unknown_field"}
    assert count_messages() == 2
    # per-item idempotency keys replay
    again = post(client, headers, {"messages": [items[3]]}, path="/api/v1/messages/batch").json["results"][0]
    assert again["id"] == results[3]["id"]
    assert count_messages() == 2


@pytest.mark.parametrize("messages", [[], None, "x", [{"to": PHONE, "text": "x"}] * 1001])
def test_batch_size_and_shape_are_checked(client, headers, messages):
    body = assert_problem(
        post(client, headers, {"messages": messages}, path="/api/v1/messages/batch"), 422, "validation_error"
    )
    assert "messages" in field_codes(body)


def test_batch_of_1000_is_stored_in_one_go(client, headers):
    items = [{"to": f"+7916{i:07d}", "text": f"m{i}"} for i in range(1000)]
    r = post(client, headers, {"messages": items}, path="/api/v1/messages/batch")
    assert r.status_code == 200
    assert all("id" in x for x in r.json["results"])
    assert count_messages() == 1000
    with transaction() as conn:
        assert conn.execute(select(func.count()).select_from(MessageEvent)).scalar_one() == 1000


# --- reading, listing, isolation ----------------------------------------------------------------------


def test_message_of_another_entity_is_404(client, factory, acme, headers):
    mid = post(client, headers, {"to": PHONE, "text": "mine"}).json["id"]
    other = factory.headers(factory.entity(factory.provider()))
    assert_problem(client.get(f"/api/v1/messages/{mid}", headers=other), 404, "not_found")
    assert_problem(client.post(f"/api/v1/messages/{mid}/cancel", headers=other), 404, "not_found")
    assert client.get(f"/api/v1/messages/{mid}", headers=factory.headers()).status_code == 200  # admin
    assert_problem(client.get("/api/v1/messages/not-a-uuid", headers=headers), 404, "not_found")
    assert_problem(client.get(f"/api/v1/messages/{uuid.uuid4()}", headers=headers), 404, "not_found")


def test_list_is_newest_first_with_a_cursor(client, headers, factory):
    ids = [
        post(client, headers, {"to": PHONE, "text": f"m{i}", "reference": f"r{i % 2}"}).json["id"]
        for i in range(7)
    ]
    other = factory.headers(factory.entity(factory.provider()))
    post(client, other, {"to": PHONE, "text": "not mine"})
    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/messages", query_string=query, headers=headers).json
        seen += [x["id"] for x in page["items"]]
        assert all("events" not in x for x in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    refs = client.get("/api/v1/messages", query_string={"reference": "r1"}, headers=headers).json["items"]
    assert [x["id"] for x in refs] == [ids[5], ids[3], ids[1]]


def test_list_filters(client, headers):
    a = post(client, headers, {"to": PHONE, "text": "a"}).json
    b = post(client, headers, {"to": "+79031112233", "text": "b"}).json
    client.post(f"/api/v1/messages/{b['id']}/cancel", headers=headers)

    def ids(**query):
        return [
            x["id"] for x in client.get("/api/v1/messages", query_string=query, headers=headers).json["items"]
        ]

    assert ids(status="canceled") == [b["id"]]
    assert ids(status=["canceled", "queued"]) == [b["id"], a["id"]]
    assert ids(to="8 903 111-22-33") == [b["id"]]
    assert ids(created_after=a["created_at"]) == [b["id"]]
    assert ids(created_before=b["created_at"]) == [a["id"]]
    assert ids(legal_entity="acme") == [b["id"], a["id"]]


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"limit": 0}, "limit", "too_small"),
        ({"limit": 501}, "limit", "too_large"),
        ({"limit": "x"}, "limit", "invalid_type"),
        ({"status": "lost"}, "status[0]", "invalid_value"),
        ({"created_after": "soon"}, "created_after", "invalid_datetime"),
        ({"cursor": "garbage"}, "cursor", "invalid_cursor"),
        ({"to": "abc"}, "to", "invalid_phone"),
    ],
)
def test_list_bad_queries_are_422(client, headers, query, field, code):
    body = assert_problem(
        client.get("/api/v1/messages", query_string=query, headers=headers), 422, "validation_error"
    )
    assert field_codes(body) == {field: code}


# --- cancel -------------------------------------------------------------------------------------------


def test_cancel_a_queued_message(client, headers):
    mid = post(client, headers, {"to": PHONE, "text": "x"}).json["id"]
    r = client.post(f"/api/v1/messages/{mid}/cancel", headers=headers)
    assert r.status_code == 200
    assert r.json["status"] == "canceled" and r.json["reason"] == "canceled_by_client"
    assert [e["status"] for e in r.json["events"]] == ["queued", "canceled"]
    assert r.json["events"][1]["reason"] == "canceled_by_client"
    # canceling again changes nothing
    again = client.post(f"/api/v1/messages/{mid}/cancel", headers=headers)
    assert again.status_code == 200 and len(again.json["events"]) == 2


def test_cancel_a_scheduled_message(client, headers):
    send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    mid = post(client, headers, {"to": PHONE, "text": "x", "send_at": send_at}).json["id"]
    assert client.post(f"/api/v1/messages/{mid}/cancel", headers=headers).json["status"] == "canceled"


@pytest.mark.parametrize("status", ["sending", "sent", "delivered", "failed"])
def test_cancel_after_sending_began_is_409(client, headers, status):
    mid = post(client, headers, {"to": PHONE, "text": "x"}).json["id"]
    with transaction() as conn:
        conn.execute(Message.__table__.update().where(Message.id == uuid.UUID(mid)).values(status=status))
    assert_problem(client.post(f"/api/v1/messages/{mid}/cancel", headers=headers), 409, "not_cancelable")


# --- auth ---------------------------------------------------------------------------------------------


def test_missing_or_unknown_key_is_401(client):
    assert_problem(client.get("/api/v1/messages"), 401, "unauthorized")
    r = client.get("/api/v1/messages", headers={"Authorization": "Bearer sq_nope"})
    assert_problem(r, 401, "unauthorized")
    assert "WWW-Authenticate" in r.headers
    assert_problem(
        client.get("/api/v1/messages", headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )


def test_keys_are_stored_hashed(factory, acme):
    from smsqueue.models import ApiKey

    key = factory.key(acme)
    with transaction() as conn:
        stored = conn.execute(select(ApiKey.key_hash, ApiKey.prefix)).all()
    assert all(key not in (h, p) and len(h) == 64 for h, p in stored)


def test_nul_characters_are_bad_input_not_a_500(client, headers, factory):
    body = assert_problem(
        post(client, headers, {"to": PHONE, "text": "a\x00b", "reference": "r\x00"}), 422, "validation_error"
    )
    assert field_codes(body) == {"text": "invalid_value", "reference": "invalid_value"}
    batch = post(
        client,
        headers,
        {"messages": [{"to": PHONE, "text": "ok"}, {"to": PHONE, "text": "\x00"}]},
        path="/api/v1/messages/batch",
    ).json["results"]
    assert batch[0]["status"] == "queued" and field_codes(batch[1]["error"]) == {"text": "invalid_value"}
    listing = client.get("/api/v1/messages", query_string={"reference": "a\x00b"}, headers=headers)
    assert field_codes(assert_problem(listing, 422, "validation_error")) == {"reference": "invalid_value"}
    assert_problem(client.get("/api/v1/legal-entities/a%00b", headers=factory.headers()), 404, "not_found")


def test_text_with_percent_signs_and_quotes_is_stored_as_sent(client, headers):
    text = "100% off %s %(x)s 'quoted' \"double\" \\ back; DROP TABLE messages; --"
    single = post(client, headers, {"to": PHONE, "text": text})
    assert single.status_code == 202
    batch = post(
        client, headers, {"messages": [{"to": PHONE, "text": text}] * 3}, path="/api/v1/messages/batch"
    )
    ids = [single.json["id"]] + [x["id"] for x in batch.json["results"]]
    for mid in ids:
        assert client.get(f"/api/v1/messages/{mid}", headers=headers).json["text"] == text


def test_a_422_lists_the_provider_too_when_other_fields_fail(client, headers):
    problem = assert_problem(post(client, headers, {"to": "bad", "text": "x", "provider": "nope"}), 422,
                             "validation_error")  # fmt: skip
    assert field_codes(problem) == {"to": "invalid_phone", "provider": "provider_not_allowed"}
    batch = post(client, headers, {"messages": [{"to": "bad", "text": "", "provider": "nope"}]},
                 path="/api/v1/messages/batch").json["results"][0]  # fmt: skip
    assert field_codes(batch["error"]) == {
        "to": "invalid_phone", "text": "too_short", "provider": "provider_not_allowed"
    }  # fmt: skip


def test_an_oversized_chunked_body_is_413_too(app, headers):
    import io

    big = json.dumps({"to": PHONE, "text": "x" * (16 * 1024 * 1024 + 10)}).encode()
    with app.test_client() as c:
        r = c.post(
            "/api/v1/messages",
            input_stream=io.BytesIO(big),
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    assert_problem(r, 413, "payload_too_large")
    small = json.dumps({"to": PHONE, "text": "chunked"}).encode()
    with app.test_client() as c:
        r = c.post(
            "/api/v1/messages",
            input_stream=io.BytesIO(small),
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    assert r.status_code == 202


def _forged(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "value", "status"),
    [
        # an offset Python reads and PostgreSQL refuses: the instant is a fine place to start from
        ("/api/v1/messages", ["c", "2026-01-01T00:00:00-22:33", 1], 200),
        ("/api/v1/jobs", ["j", "2026-01-01T00:00:00-22:33", 1], 200),
        # a row id beyond bigint or below zero, a time before year 1 in UTC, JSON's Infinity
        ("/api/v1/messages", ["c", "2026-01-01T00:00:00Z", 2**70], 422),
        ("/api/v1/messages", ["c", "0001-01-01T00:00:00+01:00", 1], 422),
        ("/api/v1/jobs", ["j", "2026-01-01T00:00:00Z", -1], 422),
        ("/api/v1/legal-entities/acme/stop-list", ["s", 2**70], 422),
        ("/api/v1/audit", 2**70, 422),
        ("/api/v1/audit", float("inf"), 422),
    ],
)
def test_a_forged_cursor_is_read_or_refused_never_500(client, factory, acme, path, value, status):
    from smsqueue.api.stop_list import CURSOR_KIND

    if path.endswith("stop-list"):
        value = [CURSOR_KIND, *value[1:]]
    response = client.get(path, query_string={"cursor": _forged(value)}, headers=factory.headers())
    if status == 200:
        assert response.status_code == 200, response.data
        assert response.json["items"] == []
    else:
        body = assert_problem(response, 422, "validation_error")
        assert field_codes(body) == {"cursor": "invalid_cursor"}
