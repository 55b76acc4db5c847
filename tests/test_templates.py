"""Templates: CRUD, the placeholder syntax and its errors, messages and batch items sent with one."""

from __future__ import annotations

import pytest

from smsqueue.errors import FieldError
from smsqueue.templates import TemplateError, compile_template, render

TEXT = "Здравствуйте, {name}! Платёж {amount} руб. до {date}."


def codes(problem: dict) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in problem["errors"]]


def test_render_fills_placeholders_and_keeps_doubled_braces_literal():
    assert render("{{x}} {a_1}-{_b}{a_1} }}", {"a_1": "1", "_b": "2"}) == "{x} 1-21 }"
    assert compile_template("Привет, {имя}").placeholders == {"имя"}
    assert render("no placeholders", {}) == "no placeholders"


@pytest.mark.parametrize("text", ["{", "a {name", "{1abc}", "{a-b}", "{ name}", "}", "{}", "a } b", "{{a}"])
def test_malformed_placeholders_are_invalid_template(text):
    with pytest.raises(TemplateError) as exc:
        compile_template(text)
    assert [(e.field, e.code) for e in exc.value.errors] == [("text", "invalid_template")]


def test_missing_and_unknown_variables_each_named():
    with pytest.raises(TemplateError) as exc:
        render(TEXT, {"name": "Иван", "extra": "x"})
    assert exc.value.errors == [
        FieldError("variables", "missing_variable", "no value for the placeholder {amount}"),
        FieldError("variables", "missing_variable", "no value for the placeholder {date}"),
        FieldError("variables", "unknown_variable", "the template has no placeholder {extra}"),
    ]


@pytest.fixture
def entity(factory):
    return factory.entity(factory.provider())


@pytest.fixture
def admin(factory):
    return factory.headers()


def base(entity) -> str:
    return f"/api/v1/legal-entities/{entity.code}/templates"


def test_crud(client, entity, admin):
    r = client.post(base(entity), json={"code": "reminder", "text": TEXT, "description": "d"}, headers=admin)
    assert r.status_code == 201, r.json
    assert r.headers["Location"] == f"{base(entity)}/reminder"
    assert r.json["placeholders"] == ["amount", "date", "name"]
    again = client.post(base(entity), json={"code": "reminder", "text": "x"}, headers=admin)
    assert again.status_code == 409 and again.json["code"] == "conflict"
    assert [t["code"] for t in client.get(base(entity), headers=admin).json["items"]] == ["reminder"]
    r = client.put(f"{base(entity)}/reminder", json={"text": "Hi {name}"}, headers=admin)
    assert r.status_code == 200 and r.json["text"] == "Hi {name}" and r.json["description"] is None
    assert client.get(f"{base(entity)}/reminder", headers=admin).json["text"] == "Hi {name}"
    assert client.put(f"{base(entity)}/nope", json={"text": "x"}, headers=admin).status_code == 404
    assert client.delete(f"{base(entity)}/reminder", headers=admin).status_code == 204
    assert client.get(f"{base(entity)}/reminder", headers=admin).status_code == 404
    assert client.delete(f"{base(entity)}/reminder", headers=admin).status_code == 404


def test_malformed_text_is_422_invalid_template(client, entity, admin):
    r = client.post(base(entity), json={"code": "bad", "text": "Hi {name"}, headers=admin)
    assert r.status_code == 422 and codes(r.json) == [("text", "invalid_template")]
    client.post(base(entity), json={"code": "ok", "text": "x"}, headers=admin)
    r = client.put(f"{base(entity)}/ok", json={"text": "} {"}, headers=admin)
    assert r.status_code == 422 and codes(r.json) == [("text", "invalid_template")]
    r = client.post(base(entity), json={"code": "Bad Code", "text": "x"}, headers=admin)
    assert r.status_code == 422 and codes(r.json)[0][0] == "code"


def test_entity_keys_read_their_own_and_write_none(client, factory, entity, admin):
    client.post(base(entity), json={"code": "reminder", "text": TEXT}, headers=admin)
    own = factory.headers(entity)
    assert client.get(f"{base(entity)}/reminder", headers=own).status_code == 200
    assert client.get(base(entity), headers=own).status_code == 200
    assert client.post(base(entity), json={"code": "x", "text": "x"}, headers=own).status_code == 403
    assert client.put(f"{base(entity)}/reminder", json={"text": "x"}, headers=own).status_code == 403
    assert client.delete(f"{base(entity)}/reminder", headers=own).status_code == 403
    other = factory.entity(factory.provider())
    assert client.get(base(entity), headers=factory.headers(other)).status_code == 403
    assert client.get("/api/v1/legal-entities/nope/templates", headers=admin).status_code == 404


def test_message_with_a_template_is_rendered_and_shows_it(client, entity, admin, factory):
    client.post(base(entity), json={"code": "reminder", "text": TEXT}, headers=admin)
    own = factory.headers(entity)
    variables = {"name": "Иван", "amount": "1 500", "date": "01.12"}
    r = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "template": "reminder", "variables": variables},
        headers=own,
    )
    assert r.status_code == 202, r.json
    assert r.json["text"] == "Здравствуйте, Иван! Платёж 1 500 руб. до 01.12."
    assert r.json["template"] == "reminder" and r.json["encoding"] == "UCS-2"
    stored = client.get(f"/api/v1/messages/{r.json['id']}", headers=own).json
    assert stored["text"] == r.json["text"] and stored["template"] == "reminder" and stored["job"] is None


def test_template_errors_of_a_message(client, entity, admin, factory):
    client.post(base(entity), json={"code": "reminder", "text": TEXT}, headers=admin)
    client.post(base(entity), json={"code": "long", "text": "x" * 1590 + "{v}"}, headers=admin)
    own = factory.headers(entity)

    def post(**body):
        return client.post("/api/v1/messages", json={"to": "+79161234567", **body}, headers=own)

    r = post(template="reminder", variables={"name": "a", "amount": "1", "date": "d", "x": "1"})
    assert r.status_code == 422 and codes(r.json) == [("variables", "unknown_variable")]
    r = post(template="reminder", variables={"name": "a"})
    assert codes(r.json) == [("variables", "missing_variable")] * 2
    assert "{amount}" in r.json["errors"][0]["message"]
    r = post(template="nope")
    assert r.status_code == 422 and codes(r.json) == [("template", "not_found")]
    r = post(template="reminder", text="both")
    assert r.status_code == 422 and codes(r.json) == [("text", "invalid_value")]
    r = post()
    assert r.status_code == 422 and codes(r.json) == [("text", "required")]
    r = post(text="x", variables={"a": "b"})
    assert r.status_code == 422 and codes(r.json) == [("variables", "invalid_value")]
    r = post(template="long", variables={"v": "y" * 20})  # the rendered text obeys the rules of text
    assert r.status_code == 422 and codes(r.json) == [("text", "too_long")]
    r = post(template="reminder", variables={"name": 1})
    assert r.status_code == 422 and codes(r.json)[0] == ("variables.name", "invalid_type")


def test_batch_items_with_templates(client, entity, admin, factory):
    client.post(base(entity), json={"code": "hi", "text": "Hi {name}"}, headers=admin)
    items = [
        {"to": "+79161234567", "template": "hi", "variables": {"name": "Ann"}},
        {"to": "+79161234568", "template": "hi", "variables": {}},
        {"to": "+79161234569", "template": "nope"},
        {"to": "+79161234560", "text": "plain"},
    ]
    r = client.post("/api/v1/messages/batch", json={"messages": items}, headers=factory.headers(entity))
    results = r.json["results"]
    assert "id" in results[0] and "id" in results[3]
    assert codes(results[1]["error"]) == [("variables", "missing_variable")]
    assert codes(results[2]["error"]) == [("template", "not_found")]
    got = client.get(f"/api/v1/messages/{results[0]['id']}", headers=admin).json
    assert got["text"] == "Hi Ann" and got["template"] == "hi"
