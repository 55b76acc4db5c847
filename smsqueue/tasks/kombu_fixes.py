"""A fix for a kombu bug that kills a worker when Redis goes away with task messages unacknowledged.

On a lost connection Celery closes the channel, whose close restores unacknowledged messages; by then the
channel's connection is gone, and kombu's Redis channel fails with AttributeError ('NoneType' object has
no attribute 'hostname', celery/kombu#582) instead of a connection error. Celery ignores connection
errors there but not an AttributeError: the worker stops for good ("Unrecoverable error"), and nothing
consumes after Redis returns. Raising Redis' own ConnectionError instead lets Celery log it and reconnect;
the messages that could not be restored are found again by smsqueue's sweeps (the database is the truth).
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_smsqueue_patched"


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
