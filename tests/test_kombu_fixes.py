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


def test_the_filesystem_broker_puts_a_message_in_its_queue_only_when_it_is_whole(tmp_path, monkeypatch):
    """A consumer takes every `*.<queue>.msg` file in the folder, written or not (kombu's own publisher
    creates the file under that name, then writes it: a consumer in between killed `make run`'s worker
    with a JSONDecodeError). The fix writes elsewhere and renames: when the name appears, the message is
    whole; and the consumer reads it back."""
    import json
    import os

    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    renames: list[tuple[list[str], dict]] = []
    real_replace = os.replace

    def spy(source: str, target: str) -> None:
        visible = [p.name for p in folder.iterdir() if p.name.endswith(".q.msg")]
        with open(source, "rb") as f:
            renames.append((visible, json.loads(f.read())))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    with Connection("filesystem://", transport_options=options) as conn:
        queue = conn.SimpleQueue("q")
        queue.put({"n": 1, "pad": "x" * 4000})
        [(visible, written)] = renames
        assert visible == []  # nothing a consumer could take before the rename
        assert "body" in written  # the whole envelope, decodable, was there at the rename
        message = queue.get(timeout=2)
        assert message.payload == {"n": 1, "pad": "x" * 4000}
        message.ack()
    assert list(folder.iterdir()) == []  # no partial file left behind
