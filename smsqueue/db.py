"""The engine and transaction helpers. One engine per process, rebuilt after a fork."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

from smsqueue.config import settings

_lock = threading.Lock()
_engine: Engine | None = None
_engine_pid: int | None = None


def normalize_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    connect_args = kwargs.pop("connect_args", {})
    if url.startswith("postgresql"):
        # Fail fast when the database is unreachable, so the API answers 503 instead of hanging.
        connect_args.setdefault("connect_timeout", 3)
        connect_args.setdefault("application_name", "smsqueue")
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, connect_args=connect_args, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions into our own hands (pysqlite's implicit BEGIN is deferred and breaks
        # compare-and-set under concurrency); WAL lets readers run beside the one writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: SQLite then serialises writers cleanly instead of
        # failing a read-then-write transaction with SQLITE_BUSY.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def get_engine() -> Engine:
    global _engine, _engine_pid
    pid = os.getpid()
    if _engine is None or _engine_pid != pid:
        with _lock:
            if _engine is None or _engine_pid != pid:
                if _engine is not None:
                    # Inherited from the parent through fork: drop its pooled connections without
                    # closing them (they are the parent's sockets).
                    _engine.dispose(close=False)
                _engine = make_engine(settings().database_url)
                _engine_pid = pid
    return _engine


def reset_engine() -> None:
    """Forget the engine (tests that point the process at another database)."""
    global _engine, _engine_pid
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _engine_pid = None


def is_postgres() -> bool:
    return get_engine().dialect.name == "postgresql"


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection in a transaction: committed on success, rolled back on error."""
    with get_engine().begin() as conn:
        yield conn


_raw = threading.local()
# Statements prepared on every raw connection as it is opened: parsed and planned once per connection,
# not per request (for the hot insert, that is a quarter of the database's work).
PREPARED: dict[str, str] = {}


def prepared_statements() -> bool:
    """Whether the hot statements are PREPAREd per connection (SMSQUEUE_PREPARED_STATEMENTS; set it to
    false behind PgBouncer in transaction pooling mode: a prepared statement is session state)."""
    return settings().prepared_statements


def prepare(name: str, sql: str) -> str:
    """Register a statement to prepare on raw connections (PostgreSQL `PREPARE name AS sql`); returns the
    name, for `EXECUTE name (...)`."""
    PREPARED[name] = sql
    return name


def _thread_connection(engine: Engine) -> Any:
    """This thread's own DB-API connection for raw transactions, taken once from the engine's pool and
    detached from it (so its connect-time settings apply): the pool's check-out and check-in cost more
    than the hot statement they would wrap."""
    dbapi = getattr(_raw, "connection", None)
    if dbapi is not None and (_raw.pid != os.getpid() or _raw.engine is not engine or dbapi.closed):
        _drop_thread_connection()
        dbapi = None
    if dbapi is None:
        fairy = engine.raw_connection()
        fairy.detach()
        dbapi = fairy.dbapi_connection
        dbapi.rollback()  # the pool's connect-time settings may have left a transaction open
        # Autocommit: each statement is its own transaction, one round trip (psycopg2 otherwise sends
        # BEGIN before it and COMMIT after: three, and twice the database's protocol work).
        dbapi.autocommit = True
        _raw.connection, _raw.pid, _raw.engine = dbapi, os.getpid(), engine
        if prepared_statements():
            with dbapi.cursor() as cursor:
                for name, sql in PREPARED.items():
                    cursor.execute(f"PREPARE {name} AS {sql}")
    return dbapi


def _drop_thread_connection() -> None:
    dbapi = getattr(_raw, "connection", None)
    _raw.connection = None
    if dbapi is not None and getattr(_raw, "pid", None) == os.getpid():
        with suppress(Exception):
            dbapi.close()


@contextmanager
def raw_statement() -> Iterator[Any]:
    """A DB-API cursor for ONE statement, which is its own transaction (autocommit: atomic and committed,
    durably, when execute returns), for the hot statement where SQLAlchemy's machinery costs more than
    the statement (accepting messages: one statement inserts them and their first events). PostgreSQL
    only. Driver errors come out as SQLAlchemy's (so the API's handlers and retries see the usual
    types), and a connection found dead is dropped (the next statement opens a new one)."""
    from sqlalchemy import exc

    engine = get_engine()
    dbapi_module = engine.dialect.loaded_dbapi
    try:
        connection = _thread_connection(engine)
    except dbapi_module.Error as error:  # preparing the statements on a new connection failed
        _drop_thread_connection()
        raise exc.DBAPIError.instance(
            None, None, error, dbapi_module.Error, connection_invalidated=True
        ) from error
    try:
        with connection.cursor() as cursor:
            yield cursor
    except dbapi_module.Error as error:
        gone = bool(connection.closed) or engine.dialect.is_disconnect(error, connection, None)
        if gone:
            _drop_thread_connection()
        raise exc.DBAPIError.instance(
            None, None, error, dbapi_module.Error, connection_invalidated=gone
        ) from error


@contextmanager
def session_scope() -> Iterator[Session]:
    """An ORM session in a transaction: committed on success, rolled back on error."""
    session = Session(bind=get_engine(), expire_on_commit=False)
    try:
        with session.begin():
            yield session
    finally:
        session.close()
