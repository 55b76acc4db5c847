"""The configuration check every long-running process (web, worker, beat) makes before it serves: a
misconfiguration is one line on stderr naming the variable, and a nonzero exit, not a stack trace later.

- SMSQUEUE_SECRET_KEY is required whenever DATABASE_URL is not the embedded default (without it each host
  would write its own key file and could not read the secrets another host stored);
- DATABASE_URL must name a database this process can open;
- CELERY_BROKER_URL (and REDIS_URL) must name a broker this process can reach.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

from smsqueue.config import data_dir

# gunicorn halts (instead of respawning the worker forever) when a worker exits with this code.
EXIT_CODE = 3
CONNECT_TIMEOUT = 3


class ConfigError(Exception):
    """A misconfiguration, as the one line to print."""


def _safe(url: str) -> str:
    """A URL without its password, to name in an error."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def check_secret_key() -> None:
    url = os.environ.get("DATABASE_URL")
    embedded = f"sqlite:///{data_dir() / 'smsqueue.db'}"
    if url and url != embedded and not os.environ.get("SMSQUEUE_SECRET_KEY"):
        raise ConfigError(
            "SMSQUEUE_SECRET_KEY is required when DATABASE_URL is set (it encrypts provider and webhook "
            "secrets; every host needs the same one)"
        )


def check_database(url: str) -> None:
    from sqlalchemy import text

    from smsqueue.db import make_engine

    try:
        engine = make_engine(url)
    except Exception as exc:  # an URL SQLAlchemy cannot read, an unknown driver
        raise ConfigError(f"DATABASE_URL is not a database URL ({_safe(url)}): {_first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ConfigError(
            f"cannot open the database {_safe(url)} (DATABASE_URL): {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


def check_broker(url: str, variable: str = "CELERY_BROKER_URL") -> None:
    """A Redis URL must answer PING (the embedded filesystem broker needs nothing; another transport is
    left to Celery)."""
    if not url.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
        return
    import redis

    try:
        client = redis.Redis.from_url(
            url.replace("redis+socket://", "unix://", 1),
            socket_timeout=CONNECT_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        raise ConfigError(f"cannot reach {_safe(url)} ({variable}): {_first_line(exc)}") from None


def check_all() -> None:
    from smsqueue.config import settings

    check_secret_key()
    s = settings()
    check_database(s.database_url)
    check_broker(s.broker_url)
    if s.redis_url and s.redis_url != s.broker_url:
        check_broker(s.redis_url, "REDIS_URL")


def check_or_exit(process: str) -> None:
    """Check the configuration; on a problem print one line and exit (for the web, worker and beat)."""
    try:
        check_all()
    except ConfigError as exc:
        print(f"smsqueue {process}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CODE) from None
