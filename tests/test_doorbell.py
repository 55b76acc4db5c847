"""The Redis doorbell against a real Redis: it must keep working for as long as the process lives.

redis-py 8 caps a ConnectionPool at 100 connections made and not released; the doorbell's asks (one per
sweep run) and its reconnects once counted against that cap, so after about 100 sweeps every ask and
reconnect failed with MaxConnectionsError and lost doorbells were never re-rung (seen in CI).
"""

from __future__ import annotations

import base64
import json

import redis

from smsqueue.queues import Queues
from smsqueue.tasks.doorbell import LOST_MARKER, RedisDoorbell


def test_asking_and_reconnecting_far_past_the_pool_cap_keeps_working(redis_server) -> None:
    bell = RedisDoorbell(redis_server.url)
    plain = redis.Redis.from_url(redis_server.url)
    plain.delete(LOST_MARKER, Queues.SEND)
    cap = bell.pool.max_connections

    answers = [bell.broker_lost_doorbells() for _ in range(cap + 50)]
    assert answers[0] is True and not any(answers[1:])

    for i in range(cap + 50):
        bell.publish([[i]])
        bell.connection.disconnect()  # as after a broker restart: the next publish reconnects
    assert plain.llen(Queues.SEND) == cap + 50
    first = json.loads(plain.rpop(Queues.SEND))
    assert json.loads(base64.b64decode(first["body"]))[0] == [[0]]
    plain.delete(Queues.SEND)
