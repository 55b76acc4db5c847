"""The console's entity and provider pages through Flask's test client: an entity key sees only its own
entities (404 for the others, 403 on a form of its own), the forms change what the admin API changes
and refuse what it refuses, with the API's field codes in words next to the field; providers are for
admin keys, masked, enabled and disabled by a form, their balance fetched apart from the page.
(The same in a real browser: test_console_browser.py.)"""

# The console speaks Russian: Cyrillic letters that look like Latin ones are meant.

from __future__ import annotations

import re
from typing import Any

import pytest
from test_console import csrf_of, html, sign_in

from smsqueue.db import session_scope
from smsqueue.models import EntityProvider, LegalEntity, Provider
from smsqueue.providers.simulator import Simulator
from smsqueue.rules import admin


@pytest.fixture
def world(factory):
    p1 = factory.provider(code="smsc-main")
    p2 = factory.provider(code="smsc-reserve")
    p3 = factory.provider(code="smsru-spare", kind="smsru")
    acme = factory.entity(p1, p2, code="acme", name="ACME Collect")
    beta = factory.entity(p2, code="beta", name="Beta Finance")
    return {
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "acme": acme,
        "beta": beta,
        "admin_key": factory.key(),
        "acme_key": factory.key(acme),
    }


def stored(code: str) -> dict[str, Any]:
    with session_scope() as session:
        entity = admin.entity_by_code(session, code)
        assert entity is not None
        links = [
            (p.code, link.priority, link.sender, link.enabled) for link, p in admin.links_of(session, entity)
        ]
        return {"entity": {c.name: getattr(entity, c.name) for c in LegalEntity.__table__.c}, "links": links}


def post(client: Any, path: str, data: dict[str, Any], page: str | None = None) -> Any:
    token = csrf_of(client.get(page or path.rsplit("/", 1)[0]))
    return client.post(path, data={**{k: v for k, v in data.items() if v is not None}, "csrf_token": token})


def field_error(body: str, field_id: str) -> str:
    found = re.search(rf'id="{re.escape(field_id)}-error"[^>]*>([^<]+)<', body)
    assert found, f"no error shown for {field_id}"
    return found.group(1)


FZ_FORM = {
    "fz.enabled": "on",
    "fz.per_day": "1",
    "fz.per_week": "2",
    "fz.per_month": "8",
    "fz.weekday_hours.from": "08:00",
    "fz.weekday_hours.to": "22:00",
    "fz.weekend_hours.from": "09:00",
    "fz.weekend_hours.to": "20:00",
    "fz.holidays_as_weekends": "on",
    "fz.on_limit": "defer",
}


# --- who sees what ------------------------------------------------------------------------------------


def test_an_entity_key_sees_only_its_own_entities(client, world):
    sign_in(client, world["acme_key"])
    listing = html(client.get("/console/entities"))
    assert "/console/entities/acme" in listing and "beta" not in listing
    page = html(client.get("/console/entities/acme"))
    assert "smsc-main" in page and "smsc-reserve" in page
    assert "Только просмотр" in page and '<fieldset class="plain" disabled>' in page
    other = client.get("/console/entities/beta")
    assert other.status_code == 404 and "Страница не найдена" in other.get_data(as_text=True)
    assert client.get("/console/entities/nope").status_code == 404
    # A form post to another entity is a 404 too, and to its own a 403: the API lets admins alone edit.
    token = csrf_of(client.get("/console/entities/acme"))
    window = {"send_window.from": "10:00", "send_window.to": "18:00", "on_window": "defer"}
    before = stored("beta"), stored("acme")
    assert (
        client.post("/console/entities/beta/window", data={**window, "csrf_token": token}).status_code == 404
    )
    assert (
        client.post("/console/entities/acme/window", data={**window, "csrf_token": token}).status_code == 403
    )
    assert (stored("beta"), stored("acme")) == before
    # Providers are an admin's: not even listed.
    assert client.get("/console/providers").status_code == 404
    assert client.get("/console/providers/smsc-main").status_code == 404
    assert "/console/providers" not in html(client.get("/console/messages"))


def test_the_admin_lists_every_entity(client, world):
    sign_in(client, world["admin_key"])
    listing = html(client.get("/console/entities"))
    assert "/console/entities/acme" in listing and "/console/entities/beta" in listing
    assert "ACME Collect" in listing and "00:00–24:00" in listing


# --- the window ---------------------------------------------------------------------------------------


def test_the_window_form_saves_through_the_api_rules(client, world):
    sign_in(client, world["admin_key"])
    r = post(client, "/console/entities/acme/window",
             {"send_window.from": "21:00", "send_window.to": "06:00", "on_window": "reject"})  # fmt: skip
    assert r.status_code == 302 and r.headers["Location"].endswith(
        "/console/entities/acme?saved=window#window"
    )
    got = stored("acme")["entity"]
    assert (got["send_window_from"], got["send_window_to"], got["on_window"]) == ("21:00", "06:00", "reject")
    assert "Окно отправки сохранено" in html(client.get("/console/entities/acme?saved=window"))


@pytest.mark.parametrize(
    ("data", "field_id", "words"),
    [
        ({"send_window.from": "9:61", "send_window.to": "18:00"}, "f-send_window-from", "ЧЧ:ММ"),
        ({"send_window.from": "24:00", "send_window.to": "18:00"}, "f-send_window-from", "ЧЧ:ММ"),
        ({"send_window.from": "10:00", "send_window.to": "10:00"}, "f-send_window", "совпадают"),
        (
            {"send_window.from": "10:00", "send_window.to": "18:00", "on_window": "later"},
            "f-on_window",
            "Недопуст",
        ),
    ],
)
def test_a_bad_window_is_refused_next_to_its_field(client, world, data, field_id, words):
    sign_in(client, world["admin_key"])
    before = stored("acme")
    r = post(client, "/console/entities/acme/window", {"on_window": "defer", **data})
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert words in field_error(body, field_id)
    assert "Не сохранено" in body
    assert f'value="{data["send_window.from"]}"' in body  # what was typed is shown again
    assert stored("acme") == before


def test_the_forms_give_the_api_s_own_field_codes(app, client, world, factory):
    """The same body through the API's PATCH and through the console's form: the same codes, the
    console's words being strings.FIELD_ERRORS of those codes."""
    import smsqueue.console.strings as t

    headers = factory.headers()
    api = app.test_client().patch(
        "/api/v1/legal-entities/acme",
        json={"fz": {"per_day": 5, "per_week": 3, "per_month": 2}},
        headers=headers,
    )
    codes = {e["field"]: e["code"] for e in api.json["errors"]}
    assert codes == {
        "fz.per_week": "limit_below_shorter_period",
        "fz.per_month": "limit_below_shorter_period",
    }
    sign_in(client, world["admin_key"])
    r = post(
        client,
        "/console/entities/acme/fz",
        {**FZ_FORM, "fz.per_day": "5", "fz.per_week": "3", "fz.per_month": "2"},
    )
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    for field, code in codes.items():
        assert field_error(body, "f-" + field.replace(".", "-")) == t.FIELD_ERRORS[code]


# --- 230-FZ -------------------------------------------------------------------------------------------


def test_the_fz_form_saves_every_setting(client, world):
    sign_in(client, world["admin_key"])
    r = post(
        client, "/console/entities/acme/fz", {**FZ_FORM, "fz.holidays_as_weekends": None, "fz.enabled": None}
    )
    assert r.status_code == 302
    got = stored("acme")["entity"]
    assert got["fz_enabled"] is False and got["fz_holidays_as_weekends"] is False
    assert (got["fz_per_day"], got["fz_per_week"], got["fz_per_month"]) == (1, 2, 8)
    assert (got["fz_weekday_from"], got["fz_weekday_to"]) == ("08:00", "22:00")
    assert (got["fz_weekend_from"], got["fz_weekend_to"], got["fz_on_limit"]) == ("09:00", "20:00", "defer")
    page = html(client.get("/console/entities/acme"))
    assert 'name="fz.per_month" type="text" value="8"' in page
    assert re.search(r'name="fz.enabled" type="checkbox">', page)  # shown unticked


def test_bad_fz_settings_are_refused_each_next_to_its_field(client, world):
    sign_in(client, world["admin_key"])
    before = stored("acme")
    data = {**FZ_FORM, "fz.per_day": "два", "fz.per_month": "-1", "fz.weekend_hours.from": "22:00",
            "fz.weekend_hours.to": "09:00"}  # fmt: skip
    r = post(client, "/console/entities/acme/fz", data)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert "число" in field_error(body, "f-fz-per_day")
    assert "маленькое" in field_error(body, "f-fz-per_month")
    assert "полночь" in field_error(body, "f-fz-weekend_hours")
    assert 'value="два"' in body
    assert stored("acme") == before


# --- providers of an entity ---------------------------------------------------------------------------


def test_the_providers_form_reorders_edits_adds_and_removes(client, world):
    sign_in(client, world["admin_key"])
    page = html(client.get("/console/entities/acme"))
    assert page.index('value="smsc-main"') < page.index('value="smsc-reserve"')  # by priority
    assert '<option value="smsru-spare">' in page and '<option value="beta"' not in page
    data = {
        "providers[0].provider": "smsc-main", "providers[0].priority": "3", "providers[0].sender": "ACME",
        "providers[0].enabled": "on",
        "providers[1].provider": "smsc-reserve", "providers[1].priority": "1", "providers[1].sender": "",
        "providers[1].remove": "on",
        "providers[2].provider": "smsru-spare", "providers[2].priority": "2",
        "providers[2].sender": "79001234567",
    }  # fmt: skip
    r = post(client, "/console/entities/acme/providers", data)
    assert r.status_code == 302, r.get_data(as_text=True)
    assert stored("acme")["links"] == [
        ("smsru-spare", 2, "79001234567", False),
        ("smsc-main", 3, "ACME", True),
    ]
    page = html(client.get("/console/entities/acme"))
    assert page.index('value="smsru-spare"') < page.index('value="smsc-main"')
    assert "провайдер выключен" not in page


def test_a_bad_provider_row_is_refused_next_to_its_own_row(client, world):
    sign_in(client, world["admin_key"])
    before = stored("acme")
    data = {
        "providers[0].provider": "smsc-main", "providers[0].priority": "1", "providers[0].remove": "on",
        "providers[1].provider": "smsc-reserve", "providers[1].priority": "0",
        "providers[1].sender": "x" * 12,
    }  # fmt: skip
    r = post(client, "/console/entities/acme/providers", data)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    # The body's providers[0] is the form's row 1 (row 0 was being removed): the errors are on row 1.
    assert "маленькое" in field_error(body, "f-providers-1-priority")
    assert "отправителя" in field_error(body, "f-providers-1-sender")
    assert 'name="providers[0].remove" checked' in body  # the rows come back as they were posted
    # A provider code unknown (a form edited by hand) is the API's unknown_provider, on its row.
    data = {
        "providers[0].provider": "smsc-main",
        "providers[1].provider": "ghost",
        "providers[1].priority": "2",
    }
    body = post(client, "/console/entities/acme/providers", data).get_data(as_text=True)
    assert "Такого провайдера нет" in field_error(body, "f-providers-1-provider")
    assert stored("acme") == before


def test_a_disabled_provider_is_marked_on_the_entity_page(client, world):
    with session_scope() as session:
        admin.update_provider(session, session.get(Provider, world["p2"].id), enabled=False)
    sign_in(client, world["acme_key"])
    assert "провайдер выключен" in html(client.get("/console/entities/acme"))


def test_entity_forms_need_their_csrf_token(client, world):
    sign_in(client, world["admin_key"])
    before = stored("acme")
    window = {"send_window.from": "10:00", "send_window.to": "18:00", "on_window": "defer"}
    for extra in ({}, {"csrf_token": "forged"}):
        r = client.post("/console/entities/acme/window", data={**window, **extra})
        assert r.status_code == 400 and "Форма устарела" in r.get_data(as_text=True)
    assert stored("acme") == before
    assert (
        client.post(
            "/console/entities/acme/nope", data={"csrf_token": csrf_of(client.get("/console/entities"))}
        ).status_code
        == 404
    )


# --- providers ----------------------------------------------------------------------------------------


def test_providers_are_listed_and_shown_masked(client, world):
    sign_in(client, world["admin_key"])
    listing = html(client.get("/console/providers"))
    for code in ("smsc-main", "smsc-reserve", "smsru-spare"):
        assert f"/console/providers/{code}" in listing
    page = html(client.get("/console/providers/smsc-main"))
    assert "s3cret" not in page and world["p1"].plain_callback_token not in page
    assert re.search(r"<code>password</code></dt><dd>\*\*\*</dd>", page)
    assert re.search(r"<code>login</code></dt><dd>acme</dd>", page)
    assert "/console/entities/acme" in page  # the entities that use it
    assert 'data-url="/console/providers/smsc-main/balance"' in page  # the balance comes later
    assert client.get("/console/providers/nope").status_code == 404


def test_a_provider_is_disabled_and_enabled_from_its_page(client, world):
    sign_in(client, world["admin_key"])
    page = client.get("/console/providers/smsc-main")
    r = client.post(
        "/console/providers/smsc-main/state", data={"enabled": "false", "csrf_token": csrf_of(page)}
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("saved=off")
    with session_scope() as session:
        assert session.get(Provider, world["p1"].id).enabled is False
    page = html(client.get("/console/providers/smsc-main?saved=off"))
    assert "Провайдер выключен." in page and 'value="true"' in page and ">Включить<" in page
    r = client.post(
        "/console/providers/smsc-main/state",
        data={"enabled": "true", "csrf_token": csrf_of(client.get("/console/providers/smsc-main"))},
    )
    with session_scope() as session:
        assert session.get(Provider, world["p1"].id).enabled is True
    # Without the token nothing changes.
    assert client.post("/console/providers/smsc-main/state", data={"enabled": "false"}).status_code == 400
    with session_scope() as session:
        assert session.get(Provider, world["p1"].id).enabled is True


def test_the_balance_is_asked_of_the_provider_apart_from_the_page(client, factory, world):
    with Simulator(kind="smsc", behaviour={"balance": 1234.5}) as sim:
        provider = factory.provider(sim.url, code="smsc-sim")
        sign_in(client, world["admin_key"])
        r = client.get("/console/providers/smsc-sim/balance")
        assert r.status_code == 200 and r.json == {"text": "1 234,50 RUB"}
        sim.set_behaviour(fail_http=500, affects=["balance"])
        failed = client.get(f"/console/providers/{provider.code}/balance").json
    assert failed["error"].startswith("Провайдер не ответил")
    down = client.get("/console/providers/smsc-main/balance").json  # nothing listens on its port
    assert "error" in down and "s3cret" not in down["error"]
    assert client.get("/console/providers/nope/balance").status_code == 404


def test_entity_links_stay_as_the_api_shows_them(app, client, world, factory):
    """What the console's providers form stored reads back through the API the same."""
    sign_in(client, world["admin_key"])
    data = {"providers[0].provider": "smsc-main", "providers[0].priority": "1", "providers[0].enabled": "on",
            "providers[0].sender": "ACME"}  # fmt: skip
    assert post(client, "/console/entities/beta/providers", data).status_code == 302
    api = app.test_client().get("/api/v1/legal-entities/beta/providers", headers=factory.headers()).json
    assert api == {"items": [{"provider": "smsc-main", "priority": 1, "sender": "ACME", "enabled": True}]}
    with session_scope() as session:
        assert session.query(EntityProvider).filter_by(legal_entity_id=world["beta"].id).count() == 1


def test_entity_dates_are_in_the_operators_zone(client, world):
    from zoneinfo import ZoneInfo

    from smsqueue.console.timefmt import shown

    created = stored("acme")["entity"]["created_at"]
    sign_in(client, world["acme_key"], zone="Asia/Vladivostok")
    page = html(client.get("/console/entities/acme"))
    assert shown(created, ZoneInfo("Asia/Vladivostok")) in page
    assert shown(created, ZoneInfo("Europe/Moscow")) not in page


def test_the_dashboard_links_providers_to_their_pages_for_an_admin(client, world):
    from test_console import delivered_path, seed_message

    seed_message(world["acme"], path=delivered_path(world["p1"]), provider=world["p1"])
    sign_in(client, world["admin_key"])
    assert 'href="/console/providers/smsc-main"' in html(client.get("/console/dashboard"))
    client.post("/console/sign-out", data={"csrf_token": csrf_of(client.get("/console/dashboard"))})
    sign_in(client, world["acme_key"])
    body = html(client.get("/console/dashboard"))
    assert "smsc-main" in body and 'href="/console/providers/' not in body
