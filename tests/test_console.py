"""The operator console through Flask's test client: sign-in and its cookie, CSRF, the key checked on
every request, entity isolation in the queries, search and its pages, the message page, the dashboard.
(The same in a real browser: test_console_browser.py.)"""

# The console speaks Russian: Cyrillic letters that look like Latin ones are meant.

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from smsqueue import auth
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.messages import NewMessage, insert_messages, messages_t, transition
from smsqueue.models import ApiKey, MetricCounter
from smsqueue.models.webhooks import WebhookAttempt
from smsqueue.statuses import Status

PHONE = "+79161234567"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- data ---------------------------------------------------------------------------------------------


def seed_message(
    entity: Any,
    *,
    to: str = PHONE,
    text: str = "Напоминаем о платеже",
    reference: str | None = None,
    path: tuple[tuple[Status, str | None, dict[str, Any] | None], ...] = (),
    provider: Any = None,
    provider_message_id: str | None = None,
    created_at: datetime | None = None,
    callback_url: str | None = None,
) -> tuple[int, str]:
    """A message of `entity` taken through `path`: (status, reason, event detail) steps, as the sender
    and the reports record them."""
    with transaction() as conn:
        (moved,) = insert_messages(
            conn,
            [
                NewMessage(
                    id=uuid.uuid4(),
                    legal_entity_id=entity.id,
                    to=to,
                    text=text,
                    segments=1,
                    encoding="UCS-2",
                    reference=reference,
                    callback_url=callback_url,
                )
            ],
            at=created_at,
        )
        values = {"provider_id": provider.id} if provider is not None else {}
        if provider_message_id:
            values["provider_message_id"] = provider_message_id
        for status, reason, detail in path:
            assert transition(conn, moved.pk, status, reason=reason, detail=detail, values=values)
    return moved.pk, str(moved.id)


def delivered_path(provider: Any) -> tuple[tuple[Status, str | None, dict[str, Any] | None], ...]:
    return (
        (Status.SENDING, None, {"provider": provider.code}),
        (Status.SENT, None, {"provider": provider.code, "attempt": 1}),
        (Status.DELIVERED, None, {"source": "report", "provider_status": "1"}),
    )


@pytest.fixture
def world(factory):
    """Two entities with a provider each, a key for each and an admin key."""
    p1 = factory.provider(code="smsc-main")
    p2 = factory.provider(code="smsc-reserve")
    acme = factory.entity(p1, code="acme", name="ACME Collect")
    beta = factory.entity(p2, code="beta", name="Beta Finance")
    return {
        "p1": p1,
        "p2": p2,
        "acme": acme,
        "beta": beta,
        "admin_key": factory.key(),
        "acme_key": factory.key(acme),
        "beta_key": factory.key(beta),
    }


# --- helpers ------------------------------------------------------------------------------------------


def csrf_of(response: Any) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: Any, key: str, zone: str = "Europe/Moscow", **extra: Any) -> Any:
    page = client.get("/console/sign-in", **extra)
    return client.post(
        "/console/sign-in",
        data={"key": key, "zone": zone, "csrf_token": csrf_of(page)},
        **extra,
    )


def html(response: Any) -> str:
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True)[:500])
    return response.get_data(as_text=True)


def set_cookie_header(response: Any) -> str:
    cookies = [v for k, v in response.headers.items() if k == "Set-Cookie" and "smsqueue_console=" in v]
    assert cookies, "no console session cookie set"
    return cookies[-1]


# --- sign-in, cookie, CSRF ----------------------------------------------------------------------------


def test_pages_need_a_session_and_sign_in_returns_to_the_page(client, world):
    r = client.get("/console/dashboard")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/console/sign-in?next=/console/dashboard")
    page = client.get(r.headers["Location"])
    signed = client.post(
        "/console/sign-in",
        data={
            "key": world["admin_key"],
            "zone": "UTC",
            "next": "/console/dashboard",
            "csrf_token": csrf_of(page),
        },
    )
    assert signed.status_code == 302
    assert signed.headers["Location"] == "/console/dashboard"
    assert "Сводка" in html(client.get("/console/dashboard"))


def test_a_wrong_key_is_refused_next_to_the_field(client, world):
    r = sign_in(client, "sq_not-a-key")
    assert r.status_code == 401
    body = r.get_data(as_text=True)
    assert "Ключ не подошёл" in body
    assert 'aria-invalid="true"' in body
    assert client.get("/console/messages").status_code == 302  # still signed out


def test_an_empty_key_and_an_unknown_zone_are_field_errors(client, world):
    page = client.get("/console/sign-in")
    r = client.post("/console/sign-in", data={"key": "", "zone": "Mars/Olympus", "csrf_token": csrf_of(page)})
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert "Введите ключ" in body
    assert "Такого часового пояса нет" in body


def test_session_cookie_flags_over_http_and_https(app, world):
    plain = app.test_client()
    cookie = set_cookie_header(sign_in(plain, world["admin_key"]))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie
    assert world["admin_key"] not in cookie  # the key travels encrypted, never in clear

    secure = app.test_client()
    cookie = set_cookie_header(sign_in(secure, world["admin_key"], base_url="https://console.example"))
    assert "Secure" in cookie
    assert "SameSite=Strict" in cookie
    assert "HttpOnly" in cookie


def test_a_post_without_the_csrf_token_is_refused(client, world):
    client.get("/console/sign-in")  # a session with a token exists, but the post does not carry it
    r = client.post("/console/sign-in", data={"key": world["admin_key"], "zone": "UTC"})
    assert r.status_code == 400
    assert "Форма устарела" in r.get_data(as_text=True)
    assert client.get("/console/messages").status_code == 302

    assert sign_in(client, world["admin_key"]).status_code == 302
    for data in ({}, {"csrf_token": "forged"}):
        r = client.post("/console/settings", data={"zone": "Asia/Omsk", **data})
        assert r.status_code == 400
        r = client.post("/console/sign-out", data=data)
        assert r.status_code == 400
    assert client.get("/console/messages").status_code == 200  # neither post took effect
    assert "Europe/Moscow" in html(client.get("/console/settings"))


def test_a_token_of_another_session_is_refused(app, world):
    first, second = app.test_client(), app.test_client()
    sign_in(first, world["admin_key"])
    sign_in(second, world["admin_key"])
    token_of_first = csrf_of(first.get("/console/settings"))
    r = second.post("/console/settings", data={"zone": "Asia/Omsk", "csrf_token": token_of_first})
    assert r.status_code == 400


def test_sign_out_ends_the_session(client, world):
    sign_in(client, world["admin_key"])
    token = csrf_of(client.get("/console/messages"))
    r = client.post("/console/sign-out", data={"csrf_token": token})
    assert r.status_code == 302
    assert "notice=out" in r.headers["Location"]
    cookie = set_cookie_header(r)
    assert "Expires=Thu, 01 Jan 1970" in cookie or "Max-Age=0" in cookie
    assert client.get("/console/messages").status_code == 302
    assert "Вы вышли" in html(client.get("/console/sign-in?notice=out"))


def test_a_revoked_key_stops_working_at_once_for_a_signed_in_session(client, world):
    sign_in(client, world["acme_key"])
    assert client.get("/console/messages").status_code == 200
    with transaction() as conn:
        conn.execute(update(ApiKey).values(revoked_at=now()))
    auth.forget_cache()  # what auth's cache time does on its own within seconds
    r = client.get("/console/messages")
    assert r.status_code == 302
    assert "notice=ended" in r.headers["Location"]


def test_sign_in_goes_only_to_console_pages(client, world):
    for target in ("https://evil.example/console/", "//evil.example/", "/api/v1/messages"):
        page = client.get("/console/sign-in")  # each sign-in starts a new session with a new token
        r = client.post(
            "/console/sign-in",
            data={"key": world["admin_key"], "zone": "UTC", "next": target, "csrf_token": csrf_of(page)},
        )
        assert r.headers["Location"] == "/console/messages"


def test_pages_carry_a_strict_content_security_policy(client, world):
    sign_in(client, world["admin_key"])
    r = client.get("/console/messages")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "http://" not in r.get_data(as_text=True).replace("http://www.w3.org/2000/svg", "")


# --- search and the message page ----------------------------------------------------------------------


def test_search_by_number_in_any_form_and_open_the_message(client, world):
    p1 = world["p1"]
    _, mid = seed_message(
        world["acme"], reference="inv-42", path=delivered_path(p1), provider=p1, provider_message_id="777"
    )
    seed_message(world["acme"], to="+79161110000")
    sign_in(client, world["admin_key"])
    body = html(client.get("/console/messages", query_string={"to": "8 (916) 123-45-67"}))
    assert f"/console/messages/{mid}" in body
    assert "+79161110000" not in body
    assert "доставлено" in body

    page = html(client.get(f"/console/messages/{mid}"))
    assert "Напоминаем о платеже" in page
    assert "777" in page
    for status in ("в очереди", "отправляется", "отправлено", "доставлено"):
        assert status in page
    assert "отчёт о доставке" in page  # the report's detail, translated
    assert "smsc-main" in page


def test_search_by_reference_status_entity_and_id(client, world):
    _, a = seed_message(world["acme"], reference="inv-1")
    _, b = seed_message(
        world["beta"],
        reference="inv-1",
        path=((Status.REJECTED, "fz_daily_limit", None),),
    )
    sign_in(client, world["admin_key"])
    body = html(client.get("/console/messages", query_string={"reference": "inv-1"}))
    assert a in body and b in body
    body = html(client.get("/console/messages", query_string={"reference": "inv-1", "entity": "beta"}))
    assert a not in body and b in body
    body = html(client.get("/console/messages", query_string={"status": ["rejected"]}))
    assert a not in body and b in body
    r = client.get("/console/messages", query_string={"id": a})
    assert r.status_code == 302 and r.headers["Location"] == f"/console/messages/{a}"
    page = html(client.get(f"/console/messages/{b}"))
    assert "лимит 230-ФЗ на день" in page and "fz_daily_limit" in page


def test_time_range_is_read_in_the_operators_zone(client, world):
    base = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
    _, early = seed_message(world["acme"], created_at=base)
    _, late = seed_message(world["acme"], created_at=base + timedelta(hours=2))  # 14:00 Moscow
    sign_in(client, world["admin_key"], zone="Europe/Moscow")
    body = html(
        client.get(
            "/console/messages", query_string={"after": "2026-11-20T13:00", "before": "2026-11-20T15:00"}
        )
    )
    assert late in body and early not in body
    assert "20.11.2026 14:00:00" in body  # shown in Moscow time
    bad = html(client.get("/console/messages", query_string={"after": "вчера"}))
    assert "Укажите дату и время" in bad


def test_a_bad_number_is_a_field_error(client, world):
    sign_in(client, world["admin_key"])
    body = html(client.get("/console/messages", query_string={"to": "12ab"}))
    assert "Номер не распознан" in body
    assert 'aria-invalid="true"' in body


def test_pages_follow_the_keyset_cursor(client, world):
    start = now() - timedelta(hours=1)
    ids = [seed_message(world["acme"], created_at=start + timedelta(seconds=i))[1] for i in range(60)]
    sign_in(client, world["admin_key"])
    first = html(client.get("/console/messages", query_string={"entity": "acme"}))
    shown_first = [i for i in ids if i in first]
    assert len(shown_first) == 50
    assert ids[-1] in first and ids[0] not in first  # newest first
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = html(client.get(next_url))
    shown_second = [i for i in ids if i in second]
    assert len(shown_second) == 10 and not set(shown_second) & set(shown_first)
    assert 'rel="next"' not in second
    stale = html(
        client.get("/console/messages", query_string={"entity": "acme", "cursor": "bm90LWEtY3Vyc29y"})
    )
    assert "устарела" in stale


def test_an_entity_key_sees_only_its_entities(client, world):
    _, mine = seed_message(world["acme"], reference="same")
    _, theirs = seed_message(world["beta"], reference="same")
    sign_in(client, world["acme_key"])
    body = html(client.get("/console/messages"))
    assert mine in body and theirs not in body
    body = html(client.get("/console/messages", query_string={"reference": "same"}))
    assert mine in body and theirs not in body
    # Naming the other entity, or its message's id, finds nothing: the query keeps to the key's entities.
    body = html(client.get("/console/messages", query_string={"entity": "beta"}))
    assert theirs not in body
    assert "Beta Finance" not in body  # not even offered
    assert client.get(f"/console/messages/{theirs}").status_code == 404
    assert client.get("/console/messages", query_string={"id": theirs}).status_code == 200
    page = html(client.get(f"/console/messages/{mine}"))
    assert "видны только администратору" in page
    assert "acme" in page


def test_the_message_page_lists_webhook_attempts_for_an_admin(client, world):
    pk, mid = seed_message(world["acme"], callback_url="https://hooks.example/sms")
    at = now()
    with transaction() as conn:
        event_id = conn.execute(
            insert(messages_t.metadata.tables["message_events"])
            .values(message_pk=pk, seq=9, status="queued", at=at, webhook_attempts=0)
            .returning(messages_t.metadata.tables["message_events"].c.id)
        ).scalar_one()
        for attempt, code, error in ((1, 503, None), (2, None, "timed out after 10s")):
            conn.execute(
                insert(WebhookAttempt).values(
                    event_id=event_id,
                    message_pk=pk,
                    sequence=1,
                    attempt=attempt,
                    receiver="https://hooks.example",
                    at=at,
                    lease_until=at,
                    started_at=at,
                    finished_at=at,
                    status_code=code,
                    error=error,
                )
            )
    sign_in(client, world["admin_key"])
    page = html(client.get(f"/console/messages/{mid}"))
    assert "503" in page and "timed out after 10s" in page


def test_an_unknown_message_is_a_404_page(client, world):
    sign_in(client, world["admin_key"])
    for path in (f"/console/messages/{uuid.uuid4()}", "/console/messages/not-a-uuid"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.content_type.startswith("text/html")
        assert "Страница не найдена" in r.get_data(as_text=True)


def test_settings_change_the_zone_dates_are_shown_in(client, world):
    seed_message(world["acme"], created_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    sign_in(client, world["admin_key"], zone="Europe/Moscow")
    assert "20.11.2026 12:00:00" in html(client.get("/console/messages"))
    token = csrf_of(client.get("/console/settings"))
    bad = client.post("/console/settings", data={"zone": "Moscow", "csrf_token": token})
    assert bad.status_code == 422 and "Такого часового пояса нет" in bad.get_data(as_text=True)
    ok = client.post("/console/settings", data={"zone": "Asia/Vladivostok", "csrf_token": token})
    assert "Сохранено" in html(ok)
    assert "20.11.2026 19:00:00" in html(client.get("/console/messages"))


# --- dashboard ----------------------------------------------------------------------------------------


def test_dashboard_counts_by_status_and_provider_with_a_chart(client, world):
    p1 = world["p1"]
    for _ in range(3):
        seed_message(world["acme"], path=delivered_path(p1), provider=p1)
    seed_message(
        world["acme"],
        path=((Status.SENDING, None, None), (Status.FAILED, "provider_error:6", {"error": "6"})),
        provider=p1,
    )
    seed_message(world["beta"], created_at=now() - timedelta(hours=5))
    seed_message(world["beta"], created_at=now() - timedelta(days=2))  # outside the day
    with transaction() as conn:
        conn.execute(
            insert(MetricCounter).values(
                name="smsqueue_provider_errors_total", labels='code="6",provider="smsc-main"', value=7
            )
        )
    sign_in(client, world["admin_key"])
    body = html(client.get("/console/dashboard"))
    assert "<svg" in body and 'role="img"' in body
    cards = re.findall(r'<div class="card"><span class="muted">[^<]+</span><strong>(\d+)</strong>', body)
    assert cards == ["4", "5"]  # the last hour, the last day
    assert "smsc-main" in body
    assert "ошибка провайдера, код 6" in body
    assert re.search(r"<code>6</code></td><td[^>]*>7</td>", body)
    part = html(client.get("/console/dashboard", query_string={"part": "1"}))
    assert "<svg" in part and "<html" not in part


def test_dashboard_of_an_entity_key_counts_only_its_entities(client, world):
    seed_message(world["acme"])
    seed_message(world["beta"])
    seed_message(world["beta"])
    sign_in(client, world["acme_key"])
    body = html(client.get("/console/dashboard"))
    cards = re.findall(r'<div class="card"><span class="muted">[^<]+</span><strong>(\d+)</strong>', body)
    assert cards == ["1", "1"]
    assert "Сбои вызовов провайдеров" not in body  # service-wide counters are for admins


def test_the_console_is_not_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    assert not [p for p in spec["paths"] if p.startswith("/console")]


def test_the_api_ignores_the_console_cookie(client, world):
    sign_in(client, world["admin_key"])
    r = client.get("/api/v1/messages")
    assert r.status_code == 401  # a console session is no API credential


def test_the_console_imports_no_celery_and_no_tasks():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "smsqueue" / "console"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("celery", "smsqueue.tasks")), (path.name, name)
    code = (
        "import sys, smsqueue.console.app as a, smsqueue.console.pages_messages, "
        "smsqueue.console.pages_dashboard, smsqueue.console.pages_account, "
        "smsqueue.console.pages_entities, smsqueue.console.pages_providers, "
        "smsqueue.console.pages_stop_list, smsqueue.console.pages_templates;"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'celery' or m.startswith('smsqueue.tasks')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # The jobs page starts a job through the API's own start_job, which rings a worker: it reaches the
    # doorbell that way (and no further: Celery itself is not loaded).
    code = (
        "import sys, smsqueue.console.pages_jobs;"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'celery' or "
        "(m.startswith('smsqueue.tasks') and m not in ('smsqueue.tasks', 'smsqueue.tasks.doorbell'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_status_search_looks_through_bounded_stretches_and_goes_on(client, world, monkeypatch):
    from smsqueue.console import queries

    monkeypatch.setattr(queries, "SCAN_ROWS", 5)
    start = now() - timedelta(hours=1)
    _, old_failure = seed_message(
        world["acme"], created_at=start, path=((Status.SENDING, None, None), (Status.FAILED, "x", None))
    )
    for i in range(1, 12):
        seed_message(world["acme"], created_at=start + timedelta(minutes=i))
    sign_in(client, world["admin_key"])
    url = "/console/messages?status=failed"
    pages = []
    while url:
        body = html(client.get(url))
        pages.append(body)
        found = re.search(r'href="([^"]+)" rel="next"', body)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert len(pages) < 5
    assert [old_failure in p for p in pages] == [False, False, True]  # 5 + 5 looked through, then it
    assert "Просмотрены 5 последних сообщений" in pages[0]
