"""Migrations are the only way the schema is made: on PostgreSQL and SQLite alike they must produce
exactly what the models describe, and go down and up again cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from smsqueue.cli import alembic_config
from smsqueue.db import make_engine
from smsqueue.models import Base


def differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_and_models_agree_on_postgresql():
    assert differences(os.environ["DATABASE_URL"]) == []


def run_cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "smsqueue.cli", *args],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )


def test_migrations_and_models_agree_on_sqlite_and_go_down_and_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert differences(url) == []
    run_cli("db", "upgrade", "head", env={"DATABASE_URL": url})  # idempotent
    from alembic import command

    config = alembic_config()
    config.attributes["database_url"] = url
    command.downgrade(config, "base")
    engine = make_engine(url)
    with engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    engine.dispose()
    assert tables <= {"alembic_version"}
    command.upgrade(config, "head")
    assert differences(url) == []


def test_one_linear_history():
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
