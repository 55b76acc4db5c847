"""Alembic environment: migrations are the only way the schema is made, on PostgreSQL and SQLite alike."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import event

from alembic import context
from smsqueue.config import settings
from smsqueue.db import make_engine
from smsqueue.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    return config.attributes.get("database_url") or settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=database_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _foreign_keys_off(dbapi_conn: object, _record: object) -> None:
    # SQLite changes a table's constraints by copying it and dropping the old one; with foreign keys
    # on, that drop deletes the old table's rows first, cascading to the rows that refer to them
    # (a message's rule decisions and webhook attempts). Checked below instead, once all is done.
    dbapi_conn.execute("PRAGMA foreign_keys=OFF")  # type: ignore[attr-defined]


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        event.listen(engine, "connect", _foreign_keys_off)  # after make_engine's own: it wins
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migrations left rows whose references are gone: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
