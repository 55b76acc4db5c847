"""The kombu fix: a Redis channel whose connection is gone fails with a connection error, which Celery
ignores while reconnecting, not with the AttributeError that used to stop the worker for good."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.common import ignore_errors
from redis.exceptions import ConnectionError as RedisConnectionError

import smsqueue.tasks.celery_app  # noqa: F401 - applies the fix


def test_a_closed_channel_restoring_its_unacked_messages_raises_a_connection_error(test_env):
    conn = Connection(test_env["CELERY_BROKER_URL"])
    channel = conn.channel()
    channel.connection.client = None  # what a lost connection leaves behind
    channel._pool = None
    with pytest.raises(RedisConnectionError):
        channel.qos.restore_unacked()
    # ...which is among the errors Celery ignores while it closes the lost connection.
    ignore_errors(conn, channel.qos.restore_unacked)


def test_the_fix_is_applied_once():
    from kombu.transport import redis as kombu_redis

    from smsqueue.tasks.kombu_fixes import patch_redis_channel

    before = kombu_redis.Channel._connparams
    patch_redis_channel()
    assert kombu_redis.Channel._connparams is before


def test_a_worker_and_the_beat_retry_a_lost_broker_at_most_a_second_apart():
    """kombu's default backoff grows to 30 s: a worker would sleep through the broker's return while the
    web already says it is ready."""
    from types import SimpleNamespace

    from celery.beat import Scheduler
    from celery.worker.consumer.consumer import Consumer

    from smsqueue.tasks.kombu_fixes import RECONNECT_INTERVAL_MAX

    class Recorder:
        def __init__(self) -> None:
            self.kwargs: dict = {}

        def ensure_connection(self, *args, **kwargs):
            self.kwargs = kwargs
            return self

    conf = SimpleNamespace(
        broker_connection_retry_on_startup=True, broker_connection_retry=True, broker_connection_max_retries=3
    )
    conn = Recorder()
    Consumer.ensure_connected(
        SimpleNamespace(app=SimpleNamespace(conf=conf), first_connection_attempt=False), conn
    )
    assert conn.kwargs["interval_max"] == RECONNECT_INTERVAL_MAX <= 1.0
    assert "ensure_connection" not in vars(conn)  # the patch leaves nothing behind
    beat_conn = Recorder()
    Scheduler._ensure_connected(SimpleNamespace(app=SimpleNamespace(conf=conf), connection=beat_conn))
    assert beat_conn.kwargs["interval_max"] == RECONNECT_INTERVAL_MAX
