"""137-FZ identification (API.md "Debtors and the interaction rules"): the entity's creditor_name,
contact_phone and fz.identification, with both error codes; `append` happens before segment counting,
and the stored text is the appended one."""

from __future__ import annotations

import pytest

from smsqueue.rules.identification import (
    APPEND,
    OFF,
    REQUIRE,
    Identification,
    MissingIdentification,
    identify,
)

BASE = "/api/v1/legal-entities"
NAME = "OOO Kredit"
CONTACT = "8-800-555-35-35"
IDENT = {"creditor_name": NAME, "contact_phone": CONTACT}


@pytest.fixture
def admin(factory):
    return factory.headers()


def make(client, admin, mode, fz_enabled=True, **fields):
    body = {"code": "acme", "fz": {"enabled": fz_enabled, "identification": mode}, **IDENT, **fields}
    r = client.post(BASE, json=body, headers=admin)
    assert r.status_code == 201, r.json
    return r.json


def send(client, factory, text):
    return client.post(
        "/api/v1/messages", json={"to": "+79161234567", "text": text}, headers=factory.headers("acme")
    )


def codes(r):
    return [(e["field"], e["code"]) for e in r.json["errors"]]


# --- the rule -------------------------------------------------------------------------------------------


def test_the_text_rule():
    rule = Identification(APPEND, True, NAME, CONTACT)
    assert identify("Pay by Friday", rule) == f"Pay by Friday\n{NAME}, {CONTACT}"
    assert identify(f"{NAME} asks: call {CONTACT}", rule) == f"{NAME} asks: call {CONTACT}"
    assert identify(f"From {NAME}", rule).endswith(f"\n{NAME}, {CONTACT}")  # lacks the phone
    with pytest.raises(MissingIdentification):
        identify(f"call {CONTACT}", Identification(REQUIRE, True, NAME, CONTACT))
    assert identify("x", Identification(REQUIRE, False, NAME, CONTACT)) == "x"  # FZ off: not required
    assert identify("x", Identification(OFF, True, NAME, CONTACT)) == "x"


# --- the entity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["require", "append"])
def test_identification_without_both_fields_is_incomplete(client, admin, mode):
    r = client.post(
        BASE, json={"code": "acme", "fz": {"identification": mode}, "creditor_name": NAME}, headers=admin
    )
    assert (r.status_code, r.json["code"]) == (422, "validation_error")
    assert codes(r) == [("fz.identification", "identification_incomplete")]


def test_the_setting_is_checked_as_it_will_be_stored(client, admin, factory):
    factory.entity(code="acme")
    r = client.put(f"{BASE}/acme/fz", json={"identification": "require"}, headers=admin)
    assert (r.status_code, codes(r)) == (422, [("fz.identification", "identification_incomplete")])
    r = client.patch(f"{BASE}/acme", json={"fz": {"identification": "append"}, **IDENT}, headers=admin)
    assert r.status_code == 200, r.json
    assert (r.json["fz"]["identification"], r.json["creditor_name"], r.json["contact_phone"]) == (
        "append", NAME, CONTACT,
    )  # fmt: skip
    r = client.patch(f"{BASE}/acme", json={"contact_phone": None}, headers=admin)
    assert (r.status_code, codes(r)) == (422, [("fz.identification", "identification_incomplete")])
    r = client.patch(
        f"{BASE}/acme", json={"fz": {"identification": "off"}, "contact_phone": None}, headers=admin
    )
    assert r.status_code == 200 and r.json["contact_phone"] is None
    assert client.get(f"{BASE}/acme/fz", headers=admin).json["identification"] == "off"
    r = client.post(BASE, json={"code": "x", "fz": {"identification": "sometimes"}}, headers=admin)
    assert codes(r) == [("fz.identification", "invalid_value")]


# --- messages -------------------------------------------------------------------------------------------


def test_require_refuses_a_text_without_both(client, admin, factory):
    make(client, admin, "require")
    r = send(client, factory, "Pay by Friday")
    assert (r.status_code, r.json["code"], codes(r)) == (
        422,
        "validation_error",
        [("text", "missing_identification")],
    )
    r = send(client, factory, f"{NAME}: pay by Friday, questions {CONTACT}")
    assert r.status_code == 202 and r.json["text"] == f"{NAME}: pay by Friday, questions {CONTACT}"
    # with another invalid field, the one 422 lists both
    r = client.post("/api/v1/messages", json={"to": "123", "text": "x"}, headers=factory.headers("acme"))
    assert set(codes(r)) == {("to", "invalid_phone"), ("text", "missing_identification")}
    batch = client.post(
        "/api/v1/messages/batch",
        json={
            "messages": [
                {"to": "+79161234567", "text": "no"},
                {"to": "+79161234567", "text": f"{NAME} {CONTACT}"},
            ]
        },
        headers=factory.headers("acme"),
    ).json["results"]
    assert batch[0]["error"]["errors"][0]["code"] == "missing_identification" and "id" in batch[1]


def test_require_applies_to_an_fz_enabled_entity_only(client, admin, factory):
    make(client, admin, "require", fz_enabled=False)
    assert send(client, factory, "Pay by Friday").status_code == 202


def test_append_comes_before_segment_counting_and_is_what_is_stored(client, admin, factory):
    make(client, admin, "append")
    text = "x" * 150  # one GSM-7 segment alone; two with the identification
    r = send(client, factory, text)
    assert r.status_code == 202
    assert r.json["text"] == f"{text}\n{NAME}, {CONTACT}"
    assert (r.json["segments"], r.json["encoding"]) == (2, "GSM-7")
    stored = client.get(f"/api/v1/messages/{r.json['id']}", headers=admin).json
    assert stored["text"] == r.json["text"] and stored["segments"] == 2
    too_long = send(client, factory, "y" * 1600)
    assert codes(too_long) == [("text", "too_long")]
