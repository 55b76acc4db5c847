"""Settings from the environment, with embedded defaults that need no server.

With nothing set, the service runs on a SQLite file and a filesystem broker in the working folder (`make
run` on a fresh laptop). With DATABASE_URL and CELERY_BROKER_URL set, it runs on PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TRUE = {"1", "true", "yes", "on"}


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if not value else float(value)


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


def data_dir() -> Path:
    """Where the embedded defaults keep their files (SQLite database, broker folders, dev secret key)."""
    return Path(os.environ.get("SMSQUEUE_DATA_DIR") or Path.cwd() / ".smsqueue").resolve()


def _default_secret_key() -> str:
    """A development key kept beside the SQLite file, so provider secrets survive restarts of `make run`.
    Production sets SMSQUEUE_SECRET_KEY; a key file is only for the embedded setup."""
    path = data_dir() / "secret.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    redis_url: str | None
    secret_key: str = field(repr=False)
    allow_private_callbacks: bool
    public_url: str
    redis_prefix: str
    # sending
    send_batch_size: int  # message ids per send task
    max_attempts_per_provider: int
    retry_base_seconds: float
    retry_max_seconds: float
    # sweeps (seconds)
    sweep_interval: float
    lost_publish_after: float
    stalled_sending_after: float
    status_check_first: float
    status_check_max: float
    status_timeout: float
    # how long a provider whose account cannot send is paused (smsqueue.pauses)
    provider_pause_seconds: float = 300.0
    # status webhooks (issue 5; see smsqueue.webhooks)
    webhook_sweep_interval: float = 1.0  # how often the outbox is swept for due webhooks
    webhook_timeout: float = 10.0  # seconds a receiver has to answer one POST
    webhook_retry_base: float = 10.0  # first retry delay; doubles per failed attempt, with jitter
    webhook_retry_max: float = 3600.0  # longest delay between two attempts of one event
    webhook_retry_for: float = 24 * 3600.0  # an event is given up only after failing this long
    webhook_per_receiver: int = 16  # at most this many POSTs in flight to one receiver (origin)
    webhook_breaker_threshold: int = 3  # consecutive failures that make a receiver wait (circuit open)
    webhook_secret_grace: float = 24 * 3600.0  # the previous webhook secret still signs this long
    # CSV jobs: rows per transaction, and how long a worker's hold on a job lasts unless renewed (each
    # batch renews it; a job whose hold ran out is resumed by the sweep on another worker)
    job_batch_rows: int = 5000
    # batches stored at once by a job's runner, each on its own connection (they commit in row order)
    job_writers: int = 2
    job_lease_seconds: float = 30.0
    # retention (smsqueue.retention)
    purge_interval: float = 60.0  # how often the beat starts a purge run
    purge_batch: int = 500  # messages per purge transaction
    # seconds between two batches: the purge's share of the disks and CPU stays small (a batch takes
    # ~0.1 s), still thousands of messages a second, far beyond any day's sending
    purge_pause: float = 0.25
    # PostgreSQL `PREPARE` of the hot insert on each connection; off behind PgBouncer's transaction pooling,
    # where the next transaction may run on a server connection that never saw the PREPARE.
    prepared_statements: bool = True

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(("redis://", "rediss://", "redis+socket://"))

    @property
    def effective_redis_url(self) -> str | None:
        """Redis for rate limits and counters: REDIS_URL, else the broker when the broker is Redis."""
        return self.redis_url or (self.broker_url if self.broker_is_redis else None)


def load_settings() -> Settings:
    env = os.environ
    folder = data_dir()
    port = env.get("PORT", "8000")
    return Settings(
        database_url=env.get("DATABASE_URL") or f"sqlite:///{folder / 'smsqueue.db'}",
        broker_url=env.get("CELERY_BROKER_URL") or "filesystem://",
        redis_url=env.get("REDIS_URL") or None,
        secret_key=env.get("SMSQUEUE_SECRET_KEY") or _default_secret_key(),
        allow_private_callbacks=_bool("SMSQUEUE_ALLOW_PRIVATE_CALLBACKS"),
        public_url=(env.get("SMSQUEUE_PUBLIC_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
        redis_prefix=env.get("SMSQUEUE_REDIS_PREFIX", "smsqueue:"),
        send_batch_size=_int("SMSQUEUE_SEND_BATCH_SIZE", 50),
        max_attempts_per_provider=_int("SMSQUEUE_MAX_ATTEMPTS_PER_PROVIDER", 3),
        retry_base_seconds=_float("SMSQUEUE_RETRY_BASE_SECONDS", 2.0),
        retry_max_seconds=_float("SMSQUEUE_RETRY_MAX_SECONDS", 300.0),
        sweep_interval=_float("SMSQUEUE_SWEEP_INTERVAL", 1.0),
        lost_publish_after=_float("SMSQUEUE_LOST_PUBLISH_AFTER", 30.0),
        stalled_sending_after=_float("SMSQUEUE_STALLED_SENDING_AFTER", 45.0),
        status_check_first=_float("SMSQUEUE_STATUS_CHECK_FIRST", 10.0),
        status_check_max=_float("SMSQUEUE_STATUS_CHECK_MAX", 1800.0),
        status_timeout=_float("SMSQUEUE_STATUS_TIMEOUT", 72 * 3600.0),
        provider_pause_seconds=_float("SMSQUEUE_PROVIDER_PAUSE_SECONDS", 300.0),
        webhook_sweep_interval=_float("SMSQUEUE_WEBHOOK_SWEEP_INTERVAL", 1.0),
        webhook_timeout=_float("SMSQUEUE_WEBHOOK_TIMEOUT", 10.0),
        webhook_retry_base=_float("SMSQUEUE_WEBHOOK_RETRY_BASE_SECONDS", 10.0),
        webhook_retry_max=_float("SMSQUEUE_WEBHOOK_RETRY_MAX_SECONDS", 3600.0),
        webhook_retry_for=_float("SMSQUEUE_WEBHOOK_RETRY_FOR_SECONDS", 24 * 3600.0),
        webhook_per_receiver=_int("SMSQUEUE_WEBHOOK_PER_RECEIVER", 16),
        webhook_breaker_threshold=_int("SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD", 3),
        webhook_secret_grace=_float("SMSQUEUE_WEBHOOK_SECRET_GRACE_SECONDS", 24 * 3600.0),
        job_batch_rows=_int("SMSQUEUE_JOB_BATCH_ROWS", 5000),
        job_writers=_int("SMSQUEUE_JOB_WRITERS", 2),
        job_lease_seconds=_float("SMSQUEUE_JOB_LEASE_SECONDS", 30.0),
        purge_interval=_float("SMSQUEUE_PURGE_INTERVAL", 60.0),
        purge_batch=_int("SMSQUEUE_PURGE_BATCH", 500),
        purge_pause=_float("SMSQUEUE_PURGE_PAUSE", 0.25),
        prepared_statements=_bool("SMSQUEUE_PREPARED_STATEMENTS", True),
    )


@cache
def settings() -> Settings:
    """The process's settings, read once. Tests that change the environment call `settings.cache_clear()`."""
    return load_settings()
