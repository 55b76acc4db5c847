"""The audit log: every admin change (providers, entities, windows, FZ settings, links, keys, the webhook
secret) is recorded with who made it and what changed, secrets only as "***"; GET /api/v1/audit lists it
newest first with filters and a cursor."""

from __future__ import annotations

import json

PASSWORD = "pa55-word-secret"
NEW_PASSWORD = "new-pa55-word-secret"
TOKEN = "cb-token-secret-0123456789"


def entries(client, admin, **query) -> list[dict]:
    answer = client.get("/api/v1/audit", query_string=query, headers=admin)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["items"]


def test_every_admin_change_is_recorded_with_secrets_masked(client, factory):
    with_name = client.post("/api/v1/keys", json={"role": "admin", "name": "ops"}, headers=factory.headers())
    admin_key = with_name.get_json()["key"]
    admin = {"Authorization": f"Bearer {admin_key}"}
    settings = {"base_url": "https://smsc.ru", "login": "acme", "password": PASSWORD}
    body = {
        "code": "smsc-main",
        "kind": "smsc",
        "settings": settings,
        "callback_token": TOKEN,
        "name": "SMSC",
    }
    assert client.post("/api/v1/providers", json=body, headers=admin).status_code == 201
    patch = {"settings": {"password": NEW_PASSWORD}, "rate_limit_per_second": 5}
    assert client.patch("/api/v1/providers/smsc-main", json=patch, headers=admin).status_code == 200
    made = client.post("/api/v1/legal-entities", json={"code": "acme", "name": "ACME"}, headers=admin)
    assert made.status_code == 201
    assert client.put("/api/v1/legal-entities/acme/fz", json={"per_day": 1}, headers=admin).status_code == 200
    window = {"from": "10:00", "to": "20:00"}
    assert (
        client.put("/api/v1/legal-entities/acme/send-window", json=window, headers=admin).status_code == 200
    )
    link = {"priority": 1, "sender": "ACME"}
    assert (
        client.put("/api/v1/legal-entities/acme/providers/smsc-main", json=link, headers=admin).status_code
        == 201
    )
    assert client.delete("/api/v1/legal-entities/acme/providers/smsc-main", headers=admin).status_code == 204
    assert client.post("/api/v1/legal-entities/acme/webhook-secret", headers=admin).status_code == 200
    assert client.delete("/api/v1/legal-entities/acme", headers=admin).status_code in (200, 204)

    answer = client.get("/api/v1/audit", headers=admin)
    text = answer.get_data(as_text=True)
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN, made.get_json()["webhook_secret"], admin_key):
        assert secret not in text
    items = answer.get_json()["items"]
    actions = [i["action"] for i in items]
    assert actions[:9] == [
        "legal_entity.update",  # the DELETE (deactivation)
        "legal_entity.rotate_webhook_secret",
        "legal_entity_provider.delete",
        "legal_entity_provider.create",
        "legal_entity.update",  # send window
        "legal_entity.update",  # fz
        "legal_entity.create",
        "provider.update",
        "provider.create",
    ]
    by_action = {}
    for item in reversed(items):
        by_action.setdefault(item["action"], []).append(item)
    assert all(i["key"]["name"] == "ops" for i in items[:9])
    provider_update = by_action["provider.update"][0]["changes"]
    assert provider_update == {"rate_limit_per_second": [None, 5.0], "settings.password": ["***", "***"]}
    created = by_action["provider.create"][0]["changes"]
    assert created["settings.password"] == [None, "***"] and created["callback_token"] == [None, "***"]
    assert created["settings.login"] == [None, "acme"]
    fz, window_change, deactivated = by_action["legal_entity.update"]
    assert fz["changes"] == {"fz.per_day": [2, 1]} and fz["object"] == "acme"
    assert window_change["changes"] == {
        "send_window.from": ["09:00", "10:00"],
        "send_window.to": ["21:00", "20:00"],
    }
    assert deactivated["changes"] == {"active": [True, False]}
    assert by_action["legal_entity_provider.create"][0]["object"] == "acme/smsc-main"
    assert by_action["key.create"][0]["changes"]["role"] == [None, "admin"]
    assert "webhook_secret" in by_action["legal_entity.create"][0]["changes"]
    assert by_action["legal_entity.create"][0]["changes"]["webhook_secret"] == [None, "***"]


def test_filters_cursor_and_rights(client, factory):
    admin = factory.headers()
    for n in range(5):
        body = {"code": f"e{n}", "name": f"E{n}"}
        assert client.post("/api/v1/legal-entities", json=body, headers=admin).status_code == 201
    assert [i["object"] for i in entries(client, admin, object="e3")] == ["e3"]
    assert len(entries(client, admin, action="legal_entity.create")) == 5
    assert entries(client, admin, action="provider.create") == []
    first = client.get("/api/v1/audit", query_string={"limit": 2}, headers=admin).get_json()
    second = client.get(
        "/api/v1/audit", query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=admin
    ).get_json()
    third = client.get(
        "/api/v1/audit", query_string={"limit": 2, "cursor": second["next_cursor"]}, headers=admin
    ).get_json()
    objects = [i["object"] for page in (first, second, third) for i in page["items"]]
    assert objects == ["e4", "e3", "e2", "e1", "e0"] and third["next_cursor"] is None
    newest = first["items"][0]["at"]
    assert [i["object"] for i in entries(client, admin, before=newest)] == ["e3", "e2", "e1", "e0"][
        : len(entries(client, admin, before=newest))
    ]
    assert [i["object"] for i in entries(client, admin, after=newest)][-1] == "e4"
    bad = client.get("/api/v1/audit", query_string={"cursor": "garbage!"}, headers=admin)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "cursor"
    assert client.get("/api/v1/audit", query_string={"after": "yesterday"}, headers=admin).status_code == 422
    factory.entity(code="own")
    assert client.get("/api/v1/audit", headers=factory.headers("own")).status_code == 403
    assert json.dumps(entries(client, admin))  # plain JSON throughout


def test_stop_list_and_template_changes_are_recorded(client, factory):
    """API.md "Audit" names the stop list and templates too: each put (created or updated), batch item
    and delete is an entry, in the transaction of the change."""
    admin = factory.headers()
    entity = factory.entity(code="audited")
    base = f"/api/v1/legal-entities/{entity.code}"
    r = client.put(f"{base}/stop-list/numbers/89161234567", json={"reason": "refused"}, headers=admin)
    assert r.status_code == 201, r.get_json()
    r = client.put(
        f"{base}/stop-list/numbers/+79161234567",
        json={"reason": "protected", "note": "Ф.И.О."},
        headers=admin,
    )
    assert r.status_code == 200, r.get_json()
    batch = {"entries": [{"debtor": "loan-7", "reason": "representative_only"}]}
    assert client.post(f"{base}/stop-list/batch", json=batch, headers=admin).status_code == 200
    assert client.delete(f"{base}/stop-list/numbers/+79161234567", headers=admin).status_code == 204
    template = {"code": "remind", "text": "Долг {sum}"}
    assert client.post(f"{base}/templates", json=template, headers=admin).status_code == 201
    put = {"text": "Долг {sum} руб."}
    assert client.put(f"{base}/templates/remind", json=put, headers=admin).status_code == 200
    assert client.delete(f"{base}/templates/remind", headers=admin).status_code == 204

    items = list(reversed(entries(client, admin)))
    got = [(i["action"], i["object"]) for i in items if i["object"].startswith("audited/")]
    assert got == [
        ("stop_list_entry.create", "audited/number/+79161234567"),
        ("stop_list_entry.update", "audited/number/+79161234567"),
        ("stop_list_entry.create", "audited/debtor/loan-7"),
        ("stop_list_entry.delete", "audited/number/+79161234567"),
        ("template.create", "audited/remind"),
        ("template.update", "audited/remind"),
        ("template.delete", "audited/remind"),
    ]
    changes = [i["changes"] for i in items if i["object"].startswith("audited/")]
    assert changes[0]["reason"] == [None, "refused"]
    assert changes[1] == {"reason": ["refused", "protected"], "note": [None, "Ф.И.О."]}
    assert changes[5] == {"text": ["Долг {sum}", "Долг {sum} руб."]}
