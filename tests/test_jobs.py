"""CSV jobs: the upload's checks (each problem code), the rows' checks (each row error), BOM, `;`,
quoted newlines and Cyrillic, duplicate references, cancel, the `job` filter. Rows are run by the real
`jobs.run` in this process here; tests/test_jobs_pipeline.py runs them in real worker processes."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest

from smsqueue import jobs
from smsqueue.clock import iso, now
from smsqueue.db import transaction
from smsqueue.models import Job, JobChunk


@pytest.fixture
def entity(factory):
    return factory.entity(factory.provider())


@pytest.fixture
def headers(factory, entity):
    return factory.headers(entity)


def post(client, headers, body: bytes, content_type: str = "text/csv", **params):
    return client.post(
        "/api/v1/jobs", data=body, content_type=content_type, query_string=params, headers=headers
    )


def run(job_id: str) -> None:
    job = jobs.find(__import__("uuid").UUID(job_id))
    for _ in jobs.run(job.pk):
        pass


def errors(client, headers, job_id: str) -> list[tuple[int, str | None, str]]:
    items = client.get(f"/api/v1/jobs/{job_id}/errors", headers=headers).json["items"]
    return [(e["row"], e["field"], e["code"]) for e in items]


def messages(client, headers, job_id: str) -> list[dict]:
    return client.get("/api/v1/messages", query_string={"job": job_id, "limit": 500}, headers=headers).json[
        "items"
    ]


def stored_jobs() -> tuple[int, int]:
    from sqlalchemy import func, select

    with transaction() as conn:
        return (
            conn.execute(select(func.count()).select_from(Job)).scalar_one(),
            conn.execute(select(func.count()).select_from(JobChunk)).scalar_one(),
        )


def test_a_job_from_post_to_done_with_progress_and_the_job_filter(client, headers):
    body = "to,text,reference\n+79161234567,Hello,r1\n89161234568,Привет,r2\n".encode()
    r = post(client, headers, body, name="december")
    assert r.status_code == 202, r.json
    job = r.json
    assert job["status"] == "pending" and job["rows"] is None and job["name"] == "december"
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    run(job["id"])
    got = client.get(f"/api/v1/jobs/{job['id']}", headers=headers).json
    assert (got["status"], got["rows"], got["accepted"], got["invalid"]) == ("done", 2, 2, 0)
    assert got["by_status"] == {"queued": 2} and got["started_at"] and got["finished_at"]
    items = messages(client, headers, job["id"])
    assert sorted((m["to"], m["text"], m["reference"], m["job"]) for m in items) == [
        ("+79161234567", "Hello", "r1", job["id"]),
        ("+79161234568", "Привет", "r2", job["id"]),
    ]
    listed = client.get("/api/v1/jobs", headers=headers).json
    assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["next_cursor"] is None


def test_bom_semicolons_quoted_newlines_and_cyrillic(client, headers):
    body = '\ufeffto;text;note\n+79161234567;"Строка один\nстрока два; с ""кавычками""";x\n'.encode()
    r = post(client, headers, body)
    assert r.status_code == 202, r.json
    run(r.json["id"])
    (item,) = messages(client, headers, r.json["id"])
    assert item["text"] == 'Строка один\nстрока два; с "кавычками"'


def test_multipart_upload_with_a_template_and_fields_as_parts(client, headers, entity, factory):
    admin = factory.headers()
    client.post(
        f"/api/v1/legal-entities/{entity.code}/templates",
        json={"code": "debt", "text": "{имя}, долг {amount} руб."},
        headers=admin,
    )
    body = "to,имя,amount,unused\n+79161234567,Иван,100,z\n+79161234568,,5,z\n+79161234569,Пётр,7,z,extra\n"
    data = {"file": (io.BytesIO(body.encode()), "debts.csv"), "template": "debt", "name": "n"}
    r = client.post("/api/v1/jobs", data=data, content_type="multipart/form-data", headers=headers)
    assert r.status_code == 202, r.json
    run(r.json["id"])
    (item,) = messages(client, headers, r.json["id"])
    assert item["text"] == "Иван, долг 100 руб." and item["template"] == "debt"
    assert errors(client, headers, r.json["id"]) == [
        (3, "variables", "missing_variable"),
        (4, "row", "too_many_fields"),
    ]
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert (got["rows"], got["accepted"], got["invalid"]) == (3, 1, 2)


def test_bad_rows_are_listed_with_their_row_number_and_code(client, headers):
    later = iso(now() + timedelta(hours=1))
    body = (
        "to,text,send_at,valid_until,recipient_timezone,reference\n"
        "+79161234567,ok,,,,\n"  # row 2
        "not a phone,x,,,,\n"  # 3
        ",x,,,,\n"  # 4
        "+79161234567,,,,,\n"  # 5
        f"+79161234567,{'y' * 1601},,,,\n"  # 6
        "+79161234567,x,yesterday,,,\n"  # 7
        "+79161234567,x,2020-01-01T00:00:00Z,,,\n"  # 8
        f"+79161234567,x,{later},2020-01-01T00:00:00Z,,\n"  # 9
        "+79161234567,x,,,Mars/Base,\n"  # 10
        f"+79161234567,x,,,,{'r' * 129}\n"  # 11
        "\n"  # 12: blank, skipped
        f"+79161234567,scheduled,{later},,Europe/Moscow,ref\n"  # 13
    )
    r = post(client, headers, body.encode())
    run(r.json["id"])
    assert errors(client, headers, r.json["id"]) == [
        (3, "to", "invalid_phone"),
        (4, "to", "required"),
        (5, "text", "too_short"),
        (6, "text", "too_long"),
        (7, "send_at", "invalid_datetime"),
        (8, "send_at", "in_past"),
        (9, "valid_until", "in_past"),
        (10, "recipient_timezone", "invalid_timezone"),
        (11, "reference", "too_long"),
    ]
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert (got["rows"], got["accepted"], got["invalid"], got["by_status"]) == (
        11,
        2,
        9,
        {"queued": 1, "scheduled": 1},
    )
    page = client.get(f"/api/v1/jobs/{r.json['id']}/errors", query_string={"limit": 4}, headers=headers).json
    assert [e["row"] for e in page["items"]] == [3, 4, 5, 6] and page["next_cursor"]
    rest = client.get(
        f"/api/v1/jobs/{r.json['id']}/errors", query_string={"cursor": page["next_cursor"]}, headers=headers
    ).json
    assert [e["row"] for e in rest["items"]] == [7, 8, 9, 10, 11] and rest["next_cursor"] is None


def test_duplicate_references_across_batches(client, headers, monkeypatch):
    monkeypatch.setenv("SMSQUEUE_JOB_BATCH_ROWS", "2")
    from smsqueue.config import settings

    settings.cache_clear()
    try:
        body = "to,text,reference\n" + "".join(
            f"+7916123456{i},t,{ref}\n" for i, ref in enumerate(["a", "b", "a", "c", "b", "", ""])
        )
        r = post(client, headers, body.encode())
        run(r.json["id"])
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    assert errors(client, headers, r.json["id"]) == [
        (4, "reference", "duplicate_reference"),
        (6, "reference", "duplicate_reference"),
    ]
    assert len(messages(client, headers, r.json["id"])) == 5


def test_batches_stored_at_once_commit_in_row_order(client, headers, monkeypatch):
    """With two writers, a batch whose turn comes while the batch before has recorded its progress but
    not yet committed waits for that commit, and then moves the job on (it must not find the job
    "taken on elsewhere"). The first batch's commit is held back to make that certain."""
    import threading
    import time

    from smsqueue import ingest
    from smsqueue.config import settings

    monkeypatch.setenv("SMSQUEUE_JOB_BATCH_ROWS", "3")
    monkeypatch.setenv("SMSQUEUE_JOB_WRITERS", "2")
    settings.cache_clear()
    real_store = ingest.store
    calls = []
    second_started = threading.Event()

    def store(items, at=None, *, also=None):
        calls.append(len(items))
        first = len(calls) == 1
        if not first:
            second_started.set()

        def slow(conn, results):
            also(conn, results)
            if first:  # progress recorded, commit not yet: the next batch is stored meanwhile
                assert second_started.wait(5)
                time.sleep(0.3)

        return real_store(items, at, also=slow)

    monkeypatch.setattr(jobs.ingest, "store", store)
    try:
        body = "to,text,reference\n" + "".join(f"+791612345{i:02d},t,r{i % 7}\n" for i in range(14))
        r = post(client, headers, body.encode())
        run(r.json["id"])
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert (got["status"], got["rows"], got["accepted"], got["invalid"]) == ("done", 14, 7, 7)
    assert [e[0] for e in errors(client, headers, r.json["id"])] == list(range(9, 16))
    assert len(calls) == 5


def test_a_resumed_job_remembers_the_references_it_stored_before(client, headers, monkeypatch):
    """The runner that takes a job on after a restart knows the references of the rows committed before
    it (the filter that spares a lookup per row is filled from the stored messages)."""
    monkeypatch.setenv("SMSQUEUE_JOB_BATCH_ROWS", "2")
    from sqlalchemy import update

    from smsqueue.config import settings

    settings.cache_clear()
    try:
        refs = ["a", "b", "c", "d", "e", "f", "a", "d", "g", "f"]
        body = "to,text,reference\n" + "".join(f"+791612345{i:02d},t,{ref}\n" for i, ref in enumerate(refs))
        r = post(client, headers, body.encode())
        job = jobs.find(uuid.UUID(r.json["id"]))
        steps = jobs.run(job.pk)
        next(steps)  # rows 2-3 committed (and those in flight beside them, at most the writers' count)
        steps.close()  # this runner is gone; what it had handed on is committed or not, whole
        with transaction() as conn:
            conn.execute(update(Job.__table__).where(Job.__table__.c.pk == job.pk).values(lease_until=now()))
        stored = jobs.find(job.id).next_row
        assert 2 <= stored <= 6 and stored % 2 == 0
        run(r.json["id"])  # another runner, from the next row
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    assert errors(client, headers, r.json["id"]) == [
        (8, "reference", "duplicate_reference"),
        (9, "reference", "duplicate_reference"),
        (11, "reference", "duplicate_reference"),
    ]
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert (got["status"], got["rows"], got["accepted"], got["invalid"]) == ("done", 10, 7, 3)
    assert sorted(m["reference"] for m in messages(client, headers, r.json["id"])) == list("abcdefg")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf\r\n", "empty"),
        (b"to,text\n", "no rows"),
        (b"to,text\n\n\n", "no rows"),
        (b"phone,text\n+79161234567,x\n", "no `to` column"),
        (b"+79161234567,hello\n+79161234568,x\n", "header"),
        (b"to,reference\n+79161234567,x\n", "no `text` column"),
        (b"to,text,to\n1,2,3\n", "twice"),
        ("to,text\n+79161234567,Привет\n".encode("cp1251"), "UTF-8"),
        (b"to,text\n+79161234567,x\x00y\n", "NUL"),
    ],
)
def test_bad_files_are_422_invalid_csv_and_store_nothing(client, headers, body, detail):
    r = post(client, headers, body)
    assert r.status_code == 422, r.json
    assert r.json["code"] == "validation_error" and r.json["errors"][0]["field"] == "file"
    assert r.json["errors"][0]["code"] == "invalid_csv" and detail in r.json["errors"][0]["message"]
    assert stored_jobs() == (0, 0)


def test_not_utf8_deep_in_a_large_file_stores_nothing(client, headers):
    good = b"to,text\n" + b"+79161234567,hello\n" * 200_000  # ~3.8 MB: several spooled chunks
    r = post(client, headers, good + "+79161234567,Привет\n".encode("cp1251"))
    assert r.status_code == 422 and "UTF-8" in r.json["errors"][0]["message"]
    assert stored_jobs() == (0, 0)


def test_template_header_and_parameter_problems(client, headers, entity, factory):
    admin = factory.headers()
    client.post(
        f"/api/v1/legal-entities/{entity.code}/templates",
        json={"code": "t", "text": "{a} {b}"},
        headers=admin,
    )
    r = post(client, headers, b"to,a\n+79161234567,x\n", template="t")
    assert r.status_code == 422 and "b" in r.json["errors"][0]["message"]
    r = post(client, headers, b"to,text\n+79161234567,x\n", template="nope")
    assert r.status_code == 422 and r.json["errors"] == [
        {"field": "template", "code": "not_found", "message": "no template 'nope'"}
    ]
    r = post(client, headers, b"to,text\n+79161234567,x\n", send_at="2020-01-01T00:00:00Z", bogus="1")
    assert sorted((e["field"], e["code"]) for e in r.json["errors"]) == [
        ("bogus", "unknown_field"),
        ("send_at", "in_past"),
    ]
    r = client.post("/api/v1/jobs", json={"to": "x"}, headers=headers)
    assert r.status_code == 415 and r.json["code"] == "unsupported_media_type"
    r = client.post("/api/v1/jobs", data={"name": "x"}, content_type="multipart/form-data", headers=headers)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "file"
    assert stored_jobs() == (0, 0)


def test_entity_keys_see_only_their_jobs(client, headers, factory):
    r = post(client, headers, b"to,text\n+79161234567,x\n")
    other = factory.headers(factory.entity(factory.provider()))
    assert client.get(f"/api/v1/jobs/{r.json['id']}", headers=other).status_code == 404
    assert client.post(f"/api/v1/jobs/{r.json['id']}/cancel", headers=other).status_code == 404
    assert client.get(f"/api/v1/jobs/{r.json['id']}/errors", headers=other).status_code == 404
    assert client.get("/api/v1/jobs", headers=other).json["items"] == []
    assert (
        client.get("/api/v1/messages", query_string={"job": r.json["id"]}, headers=other).json["items"] == []
    )
    assert client.get("/api/v1/jobs/not-a-uuid", headers=headers).status_code == 404


def test_cancel_stops_the_job_and_cancels_its_waiting_messages(client, headers):
    r = post(client, headers, b"to,text\n" + b"".join(b"+7916123%04d,x\n" % i for i in range(30)))
    job = jobs.find(__import__("uuid").UUID(r.json["id"]))
    steps = jobs.run(job.pk)
    from smsqueue.config import settings

    settings.cache_clear()
    # Run it to the end, then cancel: every message still queued is canceled.
    for _ in steps:
        pass
    got = client.post(f"/api/v1/jobs/{r.json['id']}/cancel", headers=headers).json
    assert got["status"] == "canceled" and got["by_status"] == {"canceled": 30}
    item = messages(client, headers, r.json["id"])[0]
    full = client.get(f"/api/v1/messages/{item['id']}", headers=headers).json
    assert full["reason"] == "canceled_by_client"
    again = client.post(f"/api/v1/jobs/{r.json['id']}/cancel", headers=headers)
    assert again.status_code == 200 and again.json["by_status"] == {"canceled": 30}


def test_a_job_canceled_while_it_runs_stores_no_more_rows(client, headers, monkeypatch):
    monkeypatch.setenv("SMSQUEUE_JOB_BATCH_ROWS", "10")
    monkeypatch.setenv("SMSQUEUE_JOB_WRITERS", "1")  # no batch is in flight when the first is yielded
    from smsqueue.config import settings

    settings.cache_clear()
    try:
        r = post(client, headers, b"to,text\n" + b"".join(b"+7916123%04d,x\n" % i for i in range(50)))
        job = jobs.find(__import__("uuid").UUID(r.json["id"]))
        steps = jobs.run(job.pk)
        next(steps)  # the first batch of 10 is committed
        client.post(f"/api/v1/jobs/{r.json['id']}/cancel", headers=headers)
        assert list(steps) == []  # the next batch finds the job canceled and stops, storing nothing
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert got["status"] == "canceled" and got["accepted"] == 10 and got["by_status"] == {"canceled": 10}


def test_a_large_batch_goes_in_by_copy_with_tabs_backslashes_and_newlines_intact(client, headers):
    from smsqueue.messages import COPY_FROM

    text = 'таб\tслэш\\N "кавычки"\nвторая строка'
    quoted = '"' + text.replace('"', '""') + '"'
    rows = "".join(f"+7916{i:07d},{quoted},r{i}\n" for i in range(COPY_FROM + 10))
    r = post(client, headers, ("to,text,reference\n" + rows).encode())
    run(r.json["id"])
    got = client.get(f"/api/v1/jobs/{r.json['id']}", headers=headers).json
    assert (got["accepted"], got["invalid"]) == (COPY_FROM + 10, 0)
    items = messages(client, headers, r.json["id"])
    assert {m["text"] for m in items} == {text} and {m["template"] for m in items} == {None}
    full = client.get(f"/api/v1/messages/{items[0]['id']}", headers=headers).json
    assert [e["status"] for e in full["events"]] == ["queued"] and full["job"] == r.json["id"]


@pytest.mark.parametrize("mode", ["append", "require"])
def test_rows_get_the_137_fz_identification_and_carry_their_debtor(client, factory, mode):
    """A job's rows follow the entity's `fz.identification` as single messages do, and `debtor` is a
    column (API.md "Jobs")."""
    entity = factory.entity(
        factory.provider(),
        fz_enabled=True,
        fz_identification=mode,
        creditor_name="ООО Ромашка",
        contact_phone="+7 495 000-00-00",
    )
    headers = factory.headers(entity)
    body = (
        "to,text,debtor\n"
        "+79161234567,Оплатите долг,loan-1\n"
        "+79161234568,Оплатите долг. ООО Ромашка +7 495 000-00-00,loan-2\n"
    ).encode()
    r = post(client, headers, body)
    assert r.status_code == 202, r.json
    run(r.json["id"])
    got = {m["debtor"]: m["text"] for m in messages(client, headers, r.json["id"])}
    named = "Оплатите долг. ООО Ромашка +7 495 000-00-00"
    if mode == "append":
        assert got == {"loan-1": "Оплатите долг\nООО Ромашка, +7 495 000-00-00", "loan-2": named}
    else:
        assert got == {"loan-2": named}
        assert errors(client, headers, r.json["id"]) == [(2, "text", "missing_identification")]


def test_rows_stored_by_copy_equal_rows_stored_by_insert_in_every_column(factory):
    """The COPY path writes each row's line by hand: column for column, it must store what the
    statement path (an API request's) stores, and the same first event."""
    from datetime import timedelta

    from sqlalchemy import select

    from smsqueue.clock import now
    from smsqueue.db import transaction
    from smsqueue.messages import COPY_FROM, NewMessage, events_t, insert_messages, messages_t

    entity = factory.entity(factory.provider())
    at = now()
    job = uuid.uuid4()

    def item(row: int, **fields: object) -> NewMessage:
        base = dict(
            id=uuid.uuid4(),
            legal_entity_id=entity.id,
            to="+79161234567",
            text="таб\tслэш\\N\nстрока",
            segments=1,
            encoding="UCS-2",
            job_id=job,
            job_row=row,
        )
        return NewMessage(**{**base, **fields})  # type: ignore[arg-type]

    kinds = [
        {},
        dict(
            sender="ACME",
            send_at=at + timedelta(hours=1),
            valid_until=at + timedelta(hours=2),
            recipient_timezone="Europe/Moscow",
            callback_url="https://example.test/hook",
            reference="r\t1",
            debtor="d-1",
            idempotency_key="k",
            request_hash="h",
            template="tpl",
        ),
        dict(send_at=at + timedelta(hours=3), valid_until=at + timedelta(hours=2)),
    ]

    def kind_of(i: int) -> int:  # each kind once, then runs of rows alike (their shared columns written once)
        return i if i < 3 else (i // 7) % 3

    # Keys are unique per entity: each copied row with one has its own.
    copied = [
        item(i, **{**kinds[kind_of(i)], "idempotency_key": f"k{i}" if kind_of(i) == 1 else None})
        for i in range(COPY_FROM)
    ]
    single = [
        item(COPY_FROM + i, **{**k, "idempotency_key": f"s{i}" if k else None}) for i, k in enumerate(kinds)
    ]
    with transaction() as conn:
        by_copy = insert_messages(conn, copied, at)
        by_insert = [insert_messages(conn, [s], at)[0] for s in single]
    skip = {"pk", "id", "job_row", "change_seq", "idempotency_key"}
    columns = [c for c in messages_t.c if c.name not in skip]
    e = events_t.c
    with transaction() as conn:

        def stored(pk: int) -> tuple[object, ...]:
            row = conn.execute(select(*columns).where(messages_t.c.pk == pk)).one()
            ev = conn.execute(
                select(e.seq, e.status, e.reason, e.at, e.detail, e.webhook_state, e.webhook_next_at).where(
                    e.message_pk == pk
                )
            ).all()
            return (*row, ev)

        for i in [*range(len(kinds)), *range(7, 30), COPY_FROM - 1]:
            assert stored(by_copy[i].pk) == stored(by_insert[kind_of(i)].pk)
            assert by_copy[i].status == by_insert[kind_of(i)].status
        # The change position: the writing transaction's, by COPY as by INSERT (one transaction here).
        changes = set(
            conn.execute(select(messages_t.c.change_seq).where(messages_t.c.job_id == job)).scalars()
        )
        assert len(changes) == 1 and changes.pop() > 0
        keyed = conn.execute(select(messages_t.c.idempotency_key).where(messages_t.c.pk == by_copy[1].pk))
        assert keyed.scalar_one() == "k1"
