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


def test_sqlite_migrations_that_copy_a_table_keep_the_rows_that_refer_to_it(tmp_path):
    """SQLite alters a constraint by copying the table and dropping the old one; with foreign keys on,
    the drop would first delete its rows and cascade to the rows referring to them (0014 and 0015 copy
    message_events and messages). A message's events, rule decisions and webhook attempts survive going
    down past both and up again, and its change position is still kept."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from alembic import command
    from smsqueue.ids import new_id
    from smsqueue.message_rows import NewMessage, insert_messages, messages_t
    from smsqueue.models import MessageEvent
    from smsqueue.models.compliance import RuleDecision
    from smsqueue.models.webhooks import WebhookAttempt
    from smsqueue.rules import admin

    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = alembic_config()
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    engine = make_engine(url)
    at = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        entity, _ = admin.create_entity(session, code="keep", name="Keep LLC")
        entity_id = entity.id
    with engine.begin() as conn:
        (moved,) = insert_messages(
            conn,
            [
                NewMessage(
                    new_id(), entity_id, "+79161234567", "hi", 1, "GSM-7", callback_url="https://x.example/"
                )
            ],
            at,
        )
    with Session(engine) as session, session.begin():
        event = session.scalars(select(MessageEvent).where(MessageEvent.message_pk == moved.pk)).one()
        session.add(RuleDecision(message_pk=moved.pk, at=at, outcome="allowed", reasons=[]))
        session.add(
            WebhookAttempt(
                event_id=event.id, message_pk=moved.pk, sequence=1, attempt=1, receiver="https://x.example",
                at=at, lease_until=at,
            )
        )  # fmt: skip

    def counts() -> tuple[int, ...]:
        with engine.connect() as conn:
            return tuple(
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (
                    messages_t,
                    MessageEvent.__table__,
                    RuleDecision.__table__,
                    WebhookAttempt.__table__,
                )
            )

    assert counts() == (1, 1, 1, 1)
    engine.dispose()
    command.downgrade(config, "0013")
    assert counts() == (1, 1, 1, 1)
    command.upgrade(config, "head")
    assert counts() == (1, 1, 1, 1)
    assert differences(url) == []
    with engine.begin() as conn:
        (later,) = insert_messages(
            conn, [NewMessage(new_id(), entity_id, "+79161234568", "hi", 1, "GSM-7")], at
        )
        seqs = dict(conn.execute(select(messages_t.c.pk, messages_t.c.change_seq)).all())
    assert seqs[later.pk] > seqs[moved.pk] > 0  # the triggers came back with the table
    engine.dispose()
