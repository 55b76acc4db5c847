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
