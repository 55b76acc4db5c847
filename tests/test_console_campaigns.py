"""The console's templates and jobs pages through Flask's test client: templates added, changed and
deleted there are the API's, refused as the API refuses them (in words next to the field); a CSV
uploaded there is a job of the API's, run by a real worker, its progress and invalid rows shown; an
entity key sees only its own entities' jobs and templates and changes no template.
(Uploading a job and watching it finish in a real browser: test_console_browser.py.)"""

# ruff: noqa: F811 - `world` is the stop-list tests' fixture, taken by name

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import pytest
from conftest import wait_for
from test_console import csrf_of, html, sign_in
from test_console_entities import field_error
from test_console_stop_list import world  # noqa: F401 - the fixture

BASE = "/api/v1/legal-entities"
CSV = "to,text\n+79161234567,Платёж завтра\n+79031112233,Платёж сегодня\n"


def post(client: Any, path: str, data: dict[str, Any], page: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_of(client.get(page))})


def api_templates(client: Any, world: dict[str, Any], code: str = "acme") -> dict[str, str]:
    r = client.get(f"{BASE}/{code}/templates", headers=world["admin"])
    return {t["code"]: t["text"] for t in r.json["items"]}


# --- templates ----------------------------------------------------------------------------------------

PAGE = "/console/entities/acme/templates"


def test_a_template_is_added_changed_and_deleted_as_the_apis(client, world):
    sign_in(client, world["admin_key"])
    r = post(client, PAGE, {"code": "remind", "text": "Долг {sum} до {date}", "description": "первое"}, PAGE)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{PAGE}?saved=added")
    assert api_templates(client, world) == {"remind": "Долг {sum} до {date}"}
    body = html(client.get(f"{PAGE}?saved=added"))
    assert "Шаблон добавлен" in body and "<code>{date}</code>, <code>{sum}</code>" in body
    r = post(client, f"{PAGE}/remind", {"text": "Долг {sum}", "description": ""}, PAGE)
    assert r.status_code == 302 and "saved=changed" in r.headers["Location"]
    assert api_templates(client, world) == {"remind": "Долг {sum}"}
    r = post(client, f"{PAGE}/remind", {"text": "Долг {sum}", "delete": "1"}, PAGE)
    assert r.status_code == 302 and "saved=deleted" in r.headers["Location"]
    assert api_templates(client, world) == {}


@pytest.mark.parametrize(
    ("data", "field_id", "words"),
    [
        ({"code": "remind", "text": "Долг {sum"}, "f-text", "Неверный шаблон"),
        ({"code": "remind", "text": ""}, "f-text", "Слишком короткое"),
        ({"code": "Не код", "text": "Долг"}, "f-code", "Недопустимое"),
    ],
)
def test_a_bad_template_is_refused_next_to_its_field(client, world, data, field_id, words):
    sign_in(client, world["admin_key"])
    r = post(client, PAGE, data, PAGE)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert words in field_error(body, field_id) and "Не сохранено" in body
    assert f"{data['text']}</textarea>" in body  # what was typed is shown again
    assert api_templates(client, world) == {}


def test_a_code_taken_and_a_bad_change_are_refused(client, world):
    sign_in(client, world["admin_key"])
    assert post(client, PAGE, {"code": "remind", "text": "Долг {sum}"}, PAGE).status_code == 302
    again = post(client, PAGE, {"code": "remind", "text": "Другой"}, PAGE)
    assert again.status_code == 422 and "уже есть шаблон" in field_error(
        again.get_data(as_text=True), "f-code"
    )
    bad = post(client, f"{PAGE}/remind", {"text": "Долг {sum"}, PAGE)
    assert bad.status_code == 422
    assert "Неверный шаблон" in field_error(bad.get_data(as_text=True), "f-text-remind")
    assert api_templates(client, world) == {"remind": "Долг {sum}"}


def test_an_entity_key_reads_its_own_templates_and_changes_none(client, world):
    client.post(
        f"{BASE}/acme/templates", json={"code": "remind", "text": "Долг {sum}"}, headers=world["admin"]
    )
    client.post(f"{BASE}/beta/templates", json={"code": "other", "text": "Бета"}, headers=world["admin"])
    sign_in(client, world["acme_key"])
    body = html(client.get(PAGE))
    assert "Долг {sum}" in body and "менять шаблоны может ключ администратора" in body
    assert 'action="/console/entities/acme/templates' not in body and "Бета" not in body
    assert client.get("/console/entities/beta/templates").status_code == 404
    r = post(client, PAGE, {"code": "mine", "text": "x"}, "/console/entities/acme")
    assert r.status_code == 403
    r = post(client, f"{PAGE}/remind", {"text": "x", "delete": "1"}, "/console/entities/acme")
    assert r.status_code == 403
    assert api_templates(client, world) == {"remind": "Долг {sum}"}


def test_template_forms_need_their_csrf_token(client, world):
    sign_in(client, world["admin_key"])
    r = client.post(PAGE, data={"code": "remind", "text": "Долг"})
    assert r.status_code == 400 and "Форма устарела" in r.get_data(as_text=True)
    assert api_templates(client, world) == {}


# --- jobs ---------------------------------------------------------------------------------------------


def upload(client: Any, content: str, **fields: str) -> Any:
    token = csrf_of(client.get("/console/jobs"))
    data: dict[str, Any] = {"legal_entity": "acme", **fields, "csrf_token": token}
    data["file"] = (io.BytesIO(content.encode()), "debts.csv")
    return client.post("/console/jobs", data=data, content_type="multipart/form-data")


def job_id_of(response: Any) -> str:
    found = re.search(r"/console/jobs/([0-9a-f-]{36})$", response.headers["Location"])
    assert found, response.headers
    return found.group(1)


def test_an_uploaded_file_is_the_apis_job_and_a_worker_runs_it(client, world, factory, processes):
    processes.worker(queues="jobs", concurrency=1)
    client.post(
        f"{BASE}/acme/templates", json={"code": "remind", "text": "Долг {sum}"}, headers=world["admin"]
    )
    sign_in(client, world["admin_key"])
    r = upload(
        client, "to,sum\n+79161234567,100\n12345,200\n+79031112233,\n", template="remind", name="декабрь"
    )
    assert r.status_code == 302
    job_id = job_id_of(r)
    api = world["admin"]
    state = client.get(f"/api/v1/jobs/{job_id}", headers=api).json
    assert (state["legal_entity"], state["template"], state["name"]) == ("acme", "remind", "декабрь")
    done = wait_for(
        lambda: (j := client.get(f"/api/v1/jobs/{job_id}", headers=api).json)["status"] == "done" and j,
        60,
        0.2,
        "the job to finish",
    )
    assert (done["rows"], done["accepted"], done["invalid"]) == (3, 1, 2)
    page = html(client.get(f"/console/jobs/{job_id}"))
    assert "готова" in page and 'data-final="1"' in page
    assert "Номер не распознан" in page and "Пустое значение подстановки" in page
    part = html(client.get(f"/console/jobs/{job_id}?part=1"))
    assert part.lstrip().startswith("<div data-final") and "<html" not in part
    listed = html(client.get("/console/jobs"))
    assert f"/console/jobs/{job_id}" in listed and "декабрь" in listed
    found = html(client.get("/console/messages", query_string={"job": job_id}))
    assert "+79161234567" in found and "Долг 100" in found and "Найдено на этой странице: 1" in found
    assert "Найдено" not in html(client.get("/console/messages", query_string={"job": str(uuid.uuid4())}))
    sign_in(client, world["acme_key"])
    assert "+79161234567" in html(client.get("/console/messages", query_string={"job": job_id}))
    sign_in(client, factory.key(world["beta"]))
    assert "+79161234567" not in html(client.get("/console/messages", query_string={"job": job_id}))
    bad = html(client.get("/console/messages", query_string={"job": "nope"}))
    assert "Это не ID рассылки" in field_error(bad, "f-job")


@pytest.mark.parametrize(
    ("content", "fields", "field_id", "words"),
    [
        ("text\nПривет\n", {}, "f-file", "Файл не подходит"),
        ("", {}, "f-file", "Файл не подходит"),
        (CSV, {"template": "nope"}, "f-template", "Не найдено"),
        (CSV, {"legal_entity": "zzz"}, "f-legal_entity", "Такой организации нет"),
    ],
)
def test_a_bad_upload_is_refused_next_to_its_field(client, world, content, fields, field_id, words):
    sign_in(client, world["admin_key"])
    r = upload(client, content, **fields)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert words in field_error(body, field_id) and "Рассылка не начата" in body
    assert client.get("/api/v1/jobs", headers=world["admin"]).json["items"] == []


def test_an_upload_without_a_file_is_refused(client, world):
    sign_in(client, world["admin_key"])
    token = csrf_of(client.get("/console/jobs"))
    r = client.post("/console/jobs", data={"legal_entity": "acme", "csrf_token": token})
    assert r.status_code == 422 and "Выберите файл" in field_error(r.get_data(as_text=True), "f-file")


def test_an_entity_key_sees_only_its_own_jobs(client, world, factory):
    beta = client.post(
        "/api/v1/jobs?legal_entity=beta", data=CSV.encode(), content_type="text/csv", headers=world["admin"]
    ).json["id"]
    sign_in(client, world["acme_key"])
    mine = job_id_of(upload(client, CSV))
    listed = html(client.get("/console/jobs"))
    assert mine in listed and beta not in listed
    assert 'value="beta"' not in listed  # the upload form offers only the key's entities
    assert client.get(f"/console/jobs/{beta}").status_code == 404
    assert client.get(f"/console/jobs/{beta}?part=1").status_code == 404
    forged = upload(client, CSV, legal_entity="beta")
    assert forged.status_code == 422 and "Такой организации нет" in forged.get_data(as_text=True)


def test_an_upload_needs_its_csrf_token(client, world):
    sign_in(client, world["admin_key"])
    data = {"legal_entity": "acme", "file": (io.BytesIO(CSV.encode()), "a.csv")}
    r = client.post("/console/jobs", data=data, content_type="multipart/form-data")
    assert r.status_code == 400 and "Форма устарела" in r.get_data(as_text=True)
    assert client.get("/api/v1/jobs", headers=world["admin"]).json["items"] == []


def test_an_upload_may_be_larger_than_a_json_body(client, world):
    """The app takes 16 MiB JSON bodies; the console's upload takes a file as large as the API's."""
    sign_in(client, world["admin_key"])
    row = "+79161234567," + "x" * 200 + "\n"
    content = "to,text\n" + row * (17 * 1024 * 1024 // len(row) + 1)
    r = upload(client, content)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    state = client.get(f"/api/v1/jobs/{job_id_of(r)}", headers=world["admin"]).json
    assert state["size_bytes"] > 17 * 1024 * 1024
