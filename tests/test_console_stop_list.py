"""The stop list on the console's entity page, through Flask's test client: entries added and removed
there are what the admin API lists, the add form refuses what the API refuses (the same field codes,
in words next to the field), filters and pages work, an entity key reads its own list only and cannot
change it, every form needs its CSRF token; and the message search finds messages by `debtor`.
(Adding an entry in a real browser: test_console_browser.py.)"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from test_console import csrf_of, html, seed_message, sign_in
from test_console_entities import field_error

from smsqueue.console import stop_forms
from smsqueue.db import transaction
from smsqueue.messages import messages_t

BASE = "/api/v1/legal-entities"
PAGE = "/console/entities/acme"


@pytest.fixture
def world(factory):
    p1 = factory.provider(code="smsc-main")
    acme = factory.entity(p1, code="acme", name="ACME Collect")
    beta = factory.entity(p1, code="beta", name="Beta Finance")
    return {
        "acme": acme,
        "beta": beta,
        "admin": {"Authorization": f"Bearer {factory.key()}"},
        "admin_key": factory.key(),
        "acme_key": factory.key(acme),
    }


def add(client: Any, data: dict[str, str], code: str = "acme") -> Any:
    token = csrf_of(client.get(f"/console/entities/{code}"))
    form = {"stop.kind": "number", "stop.reason": "refused", **data, "csrf_token": token}
    return client.post(f"/console/entities/{code}/stop-list/add", data=form)


def listed(client: Any, world: dict[str, Any], **query: str) -> list[dict[str, Any]]:
    r = client.get(f"{BASE}/acme/stop-list", query_string=query, headers=world["admin"])
    assert r.status_code == 200, r.json
    return r.json["items"]


def test_an_entry_added_on_the_page_is_the_apis_entry(client, world):
    sign_in(client, world["admin_key"], zone="Europe/Moscow")
    r = add(
        client,
        {
            "stop.value": "8 (916) 123-45-67",
            "stop.reason": "representative_only",
            "stop.note": "звонок 02.12, просит через юриста",
            "stop.document": "доверенность 77 АБ 123",
            "stop.until": "2027-01-31T18:00",
        },
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{PAGE}?saved=stop#stop-list")
    (entry,) = listed(client, world)
    assert {k: entry[k] for k in ("to", "reason", "note", "document", "active")} == {
        "to": "+79161234567",
        "reason": "representative_only",
        "note": "звонок 02.12, просит через юриста",
        "document": "доверенность 77 АБ 123",
        "active": True,
    }
    assert entry["until"].startswith("2027-01-31T15:00:00")  # 18:00 in Moscow
    body = html(client.get(f"{PAGE}?saved=stop"))
    assert "Запись стоп-листа сохранена" in body
    assert "+79161234567" in body and "только через представителя" in body
    assert "31.01.2027 18:00:00" in body and "доверенность 77 АБ 123" in body


def test_a_debtor_entry_and_the_filters(client, world):
    sign_in(client, world["admin_key"])
    assert (
        add(client, {"stop.kind": "debtor", "stop.value": "D-1001", "stop.reason": "protected"}).status_code
        == 302
    )
    assert add(client, {"stop.value": "+79161234567"}).status_code == 302
    assert add(client, {"stop.value": "+79031112233", "stop.reason": "wrong_number"}).status_code == 302
    assert {e.get("debtor") or e.get("to") for e in listed(client, world)} == {
        "D-1001",
        "+79161234567",
        "+79031112233",
    }
    by_debtor = html(client.get(PAGE, query_string={"stop_debtor": "D-1001"}))
    assert "D-1001" in by_debtor and "+79161234567" not in by_debtor
    by_number = html(client.get(PAGE, query_string={"stop_to": "8 916 123 45 67"}))
    assert "+79161234567" in by_number and "+79031112233" not in by_number and "D-1001" not in by_number
    by_reason = html(client.get(PAGE, query_string={"stop_reason": "wrong_number"}))
    assert "+79031112233" in by_reason and "+79161234567" not in by_reason
    bad = html(client.get(PAGE, query_string={"stop_to": "not a number"}))
    assert "Номер не распознан" in field_error(bad, "f-stop_to")


def test_the_list_pages_by_the_apis_cursor(client, world, monkeypatch):
    monkeypatch.setattr(stop_forms, "PAGE_SIZE", 2)
    sign_in(client, world["admin_key"])
    numbers = [f"+7916000000{i}" for i in range(5)]
    for number in numbers:
        assert add(client, {"stop.value": number}).status_code == 302
    seen: list[str] = []
    url: str | None = PAGE
    while url:
        body = html(client.get(url))
        seen += [n for n in numbers if n in body]
        url = stop_forms_next(body)
    assert sorted(seen) == sorted(numbers) and len(seen) == len(numbers)
    stale = html(client.get(PAGE, query_string={"stop_cursor": "garbage"}))
    assert "Ссылка на страницу устарела" in stale and numbers[-1] in stale


def stop_forms_next(body: str) -> str | None:
    found = re.search(r'<nav class="pager" aria-label="Следующие записи"><a rel="next" href="([^"]+)"', body)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.parametrize(
    ("data", "field", "words", "api_field"),
    [
        ({"stop.value": "12345"}, "f-stop-value", "Номер не распознан", "to"),
        ({"stop.value": ""}, "f-stop-value", "Номер не распознан", "to"),
        ({"stop.kind": "debtor", "stop.value": ""}, "f-stop-value", "Слишком короткое", "debtor"),
        ({"stop.kind": "debtor", "stop.value": "x" * 129}, "f-stop-value", "Слишком длинное", "debtor"),
        ({"stop.value": "+79161234567", "stop.reason": "angry"}, "f-stop-reason", "Недопустимое", "reason"),
        ({"stop.value": "+79161234567", "stop.note": "n" * 2001}, "f-stop-note", "Слишком длинное", "note"),
        ({"stop.value": "+79161234567", "stop.until": "завтра"}, "f-stop-until", "Укажите дату", "until"),
    ],
)
def test_a_bad_entry_is_refused_next_to_its_field_as_the_api_refuses_it(
    client, world, data, field, words, api_field
):
    sign_in(client, world["admin_key"])
    r = add(client, data)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert words in field_error(body, field)
    assert "Не сохранено" in body
    assert listed(client, world) == []
    # The API's batch refuses the same item with an error on the same field.
    item = stop_forms.item_body({"stop.kind": "number", "stop.reason": "refused", **data}, ZoneInfo("UTC"))
    answer = client.post(f"{BASE}/acme/stop-list/batch", json={"entries": [item]}, headers=world["admin"])
    (result,) = answer.json["results"]
    assert api_field in {e["field"] for e in result["error"]["errors"]}


def test_a_typed_value_is_shown_again_after_a_refusal(client, world):
    sign_in(client, world["admin_key"])
    r = add(client, {"stop.kind": "debtor", "stop.value": "", "stop.note": "по телефону"})
    body = r.get_data(as_text=True)
    assert 'value="по телефону"' in body and '<option value="debtor" selected>' in body


def test_an_entry_is_removed_from_the_page(client, world):
    sign_in(client, world["admin_key"])
    assert add(client, {"stop.value": "+79161234567"}).status_code == 302
    assert add(client, {"stop.kind": "debtor", "stop.value": "D-7"}).status_code == 302
    token = csrf_of(client.get(PAGE))
    remove = {"kind": "number", "value": "+79161234567", "csrf_token": token}
    r = client.post(f"{PAGE}/stop-list/remove", data=remove)
    assert r.status_code == 302 and r.headers["Location"].endswith("?saved=stop_removed#stop-list")
    assert [e.get("debtor") for e in listed(client, world)] == ["D-7"]
    again = client.post(f"{PAGE}/stop-list/remove", data=remove)
    assert again.headers["Location"].endswith("?saved=stop_gone#stop-list")
    assert "Этой записи уже нет" in html(client.get(f"{PAGE}?saved=stop_gone"))


def test_an_entity_key_reads_its_own_list_and_changes_nothing(client, world):
    client.put(
        f"{BASE}/acme/stop-list/numbers/+79161234567", json={"reason": "refused"}, headers=world["admin"]
    )
    sign_in(client, world["acme_key"])
    body = html(client.get(PAGE))
    assert "+79161234567" in body and "Добавлять и убирать записи может ключ администратора" in body
    assert "stop-list/add" not in body and "stop-list/remove" not in body
    token = csrf_of(client.get(PAGE))
    form = {
        "stop.kind": "number",
        "stop.value": "+79031112233",
        "stop.reason": "refused",
        "csrf_token": token,
    }
    r = client.post(f"{PAGE}/stop-list/add", data=form)
    assert r.status_code == 403
    r = client.post(
        f"{PAGE}/stop-list/remove", data={"kind": "number", "value": "+79161234567", "csrf_token": token}
    )
    assert r.status_code == 403
    other = client.post("/console/entities/beta/stop-list/add", data={"stop.value": "+79031112233",
                                                                     "csrf_token": token})  # fmt: skip
    assert other.status_code == 404
    assert [e["to"] for e in listed(client, world)] == ["+79161234567"]


def test_stop_list_forms_need_their_csrf_token(client, world):
    sign_in(client, world["admin_key"])
    for extra in ({}, {"csrf_token": "forged"}):
        r = client.post(f"{PAGE}/stop-list/add", data={"stop.kind": "number", "stop.value": "+79161234567",
                                                       "stop.reason": "refused", **extra})  # fmt: skip
        assert r.status_code == 400 and "Форма устарела" in r.get_data(as_text=True)
    assert listed(client, world) == []


def test_the_message_search_finds_by_debtor_and_shows_it(client, world):
    pk, ident = seed_message(world["acme"], to="+79161234567")
    seed_message(world["acme"], to="+79031112233")
    with transaction() as conn:
        conn.execute(update(messages_t).where(messages_t.c.pk == pk).values(debtor="D-42"))
    sign_in(client, world["admin_key"])
    body = html(client.get("/console/messages", query_string={"debtor": "D-42"}))
    assert ident in body and "+79031112233" not in body and "D-42" in body
    assert "D-42" in html(client.get(f"/console/messages/{ident}"))
    assert "+79161234567" not in html(client.get("/console/messages", query_string={"debtor": "D-43"}))
