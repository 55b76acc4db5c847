"""The configuration check of the web, worker and beat processes: a missing SMSQUEUE_SECRET_KEY, a wrong
DATABASE_URL or broker URL is one line naming the variable and a nonzero exit, never a stack trace; the
Procfile's flower needs FLOWER_BASIC_AUTH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, CELERY, ROOT, free_port

COMMANDS = {
    "web": [
        str(BIN / "gunicorn"),
        "smsqueue.web:create_app()",
        "--bind",
        "127.0.0.1:0",
        "--no-control-socket",
    ],
    "worker": [*CELERY, "worker", "-P", "solo", "--without-mingle", "--without-gossip"],
    "beat": [*CELERY, "beat", "-s", "/dev/null/not-used"],
}


def run(process: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "REDIS_URL"))}
    base.pop("SMSQUEUE_SECRET_KEY", None)
    base["SMSQUEUE_DATA_DIR"] = str(tmp_path / "data")
    command = COMMANDS[process]
    if process == "beat":
        command = [*command[:-1], str(tmp_path / "beat-schedule")]
    return subprocess.run(command, env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], process: str, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if f"smsqueue {process}:" in line]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_the_secret_key_is_required_off_the_embedded_defaults(process, tmp_path, test_env):
    result = run(process, tmp_path, DATABASE_URL=test_env["DATABASE_URL"])
    assert_one_line_error(result, process, "SMSQUEUE_SECRET_KEY")


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_a_wrong_database_url_is_one_line(process, tmp_path, test_env):
    wrong = test_env["DATABASE_URL"].rsplit("/", 1)[0] + "/no_such_database"
    result = run(
        process, tmp_path, DATABASE_URL=wrong, SMSQUEUE_SECRET_KEY="k", CELERY_BROKER_URL="filesystem://"
    )
    assert_one_line_error(result, process, "DATABASE_URL", "no_such_database")
    garbage = run(process, tmp_path, DATABASE_URL="not a url", SMSQUEUE_SECRET_KEY="k")
    assert_one_line_error(garbage, process, "DATABASE_URL")


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_a_wrong_broker_url_is_one_line_and_hides_the_password(process, tmp_path, test_env):
    broker = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run(
        process,
        tmp_path,
        DATABASE_URL=test_env["DATABASE_URL"],
        SMSQUEUE_SECRET_KEY="k",
        CELERY_BROKER_URL=broker,
    )
    assert_one_line_error(result, process, "CELERY_BROKER_URL")
    assert "hunter2" not in result.stdout + result.stderr


def test_the_embedded_defaults_need_no_secret_key(monkeypatch):
    """No DATABASE_URL: no key needed (a key file beside the SQLite file is the development key)."""
    from smsqueue.startup import ConfigError, check_secret_key

    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("SMSQUEUE_SECRET_KEY")
    check_secret_key()
    monkeypatch.setenv("DATABASE_URL", "postgresql://somewhere/db")
    with pytest.raises(ConfigError):
        check_secret_key()


def test_flower_needs_basic_auth():
    line = next(row for row in (ROOT / "Procfile").read_text().splitlines() if row.startswith("flower:"))
    command = line.split(":", 1)[1].strip()
    assert "--basic-auth=" in command
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr
