"""The `smsqueue` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from smsqueue.db import transaction


def smsqueue(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smsqueue.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_create_prints_the_key_alone_on_stdout(client, factory):
    entity = factory.entity(factory.provider(), code="cli-co")
    admin = smsqueue("keys", "create", "--admin")
    assert admin.returncode == 0, admin.stderr
    lines = admin.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sq_")
    r = client.get("/api/v1/messages", headers={"Authorization": f"Bearer {lines[0]}"})
    assert r.status_code == 200
    bound = smsqueue("keys", "create", "--entity", entity.code).stdout.strip()
    sent = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "text": "x"},
        headers={"Authorization": f"Bearer {bound}"},
    )
    assert sent.status_code == 202 and sent.json["legal_entity"] == "cli-co"


def test_keys_create_refuses_unknown_entities_and_bad_arguments():
    unknown = smsqueue("keys", "create", "--entity", "no-such-entity")
    assert unknown.returncode == 1 and unknown.stdout == "" and "no-such-entity" in unknown.stderr
    assert smsqueue("keys", "create").returncode == 2
    assert smsqueue("keys", "create", "--admin", "--entity", "x").returncode == 2


def test_demo_makes_a_provider_an_entity_and_working_keys(client):
    out = smsqueue("demo", "--simulator-url", "http://127.0.0.1:9001")
    assert out.returncode == 0, out.stderr
    keys = [line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if "key:" in line]
    assert len(keys) == 2
    assert "curl" in out.stdout and "/api/v1/messages" in out.stdout
    r = client.post(
        "/api/v1/messages",
        json={"to": "+79161234567", "text": "demo"},
        headers={"Authorization": f"Bearer {keys[1]}"},
    )
    assert r.status_code == 202 and r.json["legal_entity"] == "demo"
    # A second run reuses the provider and entity.
    assert smsqueue("demo").returncode == 0
    with transaction() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM legal_entities").scalar_one() == 1
        # SMSC first, SMS Traffic and IQSMS on failover (the three simulators `make run` starts).
        assert conn.exec_driver_sql("SELECT kind FROM providers ORDER BY id").scalars().all() == [
            "smsc",
            "smstraffic",
            "iqsms",
        ]
        assert conn.exec_driver_sql("SELECT count(*) FROM entity_providers").scalar_one() == 3
