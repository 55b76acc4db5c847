"""Fixes for how Celery and kombu live through a Redis that goes away and comes back.

1. `patch_redis_channel`: a kombu bug that kills a worker when Redis goes away with task messages
   unacknowledged.
3. `patch_filesystem_put`: the embedded broker (`make run`) could hand a worker a message file that its
   publisher had created but not yet written, which kills the worker (below).

On a lost connection Celery closes the channel, whose close restores unacknowledged messages; by then the
channel's connection is gone, and kombu's Redis channel fails with AttributeError ('NoneType' object has
no attribute 'hostname', celery/kombu#582) instead of a connection error. Celery ignores connection
errors there but not an AttributeError: the worker stops for good ("Unrecoverable error"), and nothing
consumes after Redis returns. Raising Redis' own ConnectionError instead lets Celery log it and reconnect;
the messages that could not be restored are found again by smsqueue's sweeps (the database is the truth).
"""

from __future__ import annotations

import functools
from typing import Any

_PATCHED = "_smsqueue_patched"
# The longest wait between two attempts to reach the broker again (kombu's default grows to 30 s). The
# web says it is ready as soon as Redis answers; a worker or beat still sleeping in its backoff would
# leave new messages unsent for that long.
RECONNECT_INTERVAL_MAX = 1.0


def patch_redis_channel() -> None:
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, _PATCHED, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the channel's connection is closed")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _PATCHED, True)
    kombu_redis.Channel._connparams = _connparams


def patch_reconnect_backoff() -> None:
    """2. The worker's consumer and the beat retry a lost broker with kombu's default backoff (2 s, then 2 s
    more per attempt, up to 30 s). Cap it at RECONNECT_INTERVAL_MAX: a worker reconnects within a
    second of Redis coming back, not after its sleep."""
    from celery.beat import Scheduler
    from celery.worker.consumer.consumer import Consumer

    original_consumer = Consumer.ensure_connected
    if getattr(original_consumer, _PATCHED, False):
        return
    original_beat = Scheduler._ensure_connected

    def ensure_connected(self: Any, conn: Any) -> Any:
        with _short_backoff(conn):
            return original_consumer(self, conn)

    def beat_ensure_connected(self: Any) -> Any:
        with _short_backoff(self.connection):
            return original_beat(self)

    for patched in (ensure_connected, beat_ensure_connected):
        setattr(patched, _PATCHED, True)
    Consumer.ensure_connected = ensure_connected
    Scheduler._ensure_connected = beat_ensure_connected


class _short_backoff:
    """Within it, `conn.ensure_connection` waits at most RECONNECT_INTERVAL_MAX between attempts."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.ensure_connection = functools.partial(
            type(self.conn).ensure_connection,
            self.conn,
            interval_start=0.2,
            interval_step=0.2,
            interval_max=RECONNECT_INTERVAL_MAX,
        )

    def __exit__(self, *_: object) -> None:
        del self.conn.ensure_connection  # the class's method shows through again


def patch_filesystem_put() -> None:
    """3. kombu's filesystem transport writes a message straight into the queue folder under its final
    name; a consumer listing the folder at that moment moves the still-empty file away and fails to
    decode it ("Unrecoverable error: JSONDecodeError"), and the worker stops. Each second's beat ticks
    make it likely within minutes. Write under a name no consumer takes, then rename it into place (a
    rename within one folder is atomic)."""
    import os
    import uuid

    from kombu.transport import filesystem
    from kombu.utils.encoding import str_to_bytes
    from kombu.utils.json import dumps

    original = filesystem.Channel._put
    if getattr(original, _PATCHED, False):
        return

    def _put(self: Any, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(filesystem.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")  # `_get` takes *.<queue>.msg only
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    setattr(_put, _PATCHED, True)
    filesystem.Channel._put = _put
