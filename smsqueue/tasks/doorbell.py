"""Publishing send tasks after a commit. The broker is a doorbell: a publish that fails (Redis down) is
logged and left to the republish sweep, which finds the message still `queued` in the database. After a
failure, publishing is skipped for a second, so an outage costs a request at most one short attempt.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from smsqueue.config import settings
from smsqueue.messages import Followups
from smsqueue.queues import ROUTES, Queues, Tasks

log = logging.getLogger(__name__)

# After a failed publish, publishing is skipped for this long (the sweep re-publishes what was skipped),
# so an outage costs one failed attempt per process and second, not one per message.
BREAKER_SECONDS = 1.0
_broken_until = 0.0


class RedisDoorbell:
    """Publishes `send_messages` straight onto the Redis list the workers read, in Celery's message
    format (protocol 2), with one long-lived client.

    Why: Celery's apply_async costs ~400 us of CPU per publish here, most of it kombu building a new
    Redis client object per message; one LPUSH on a kept connection costs ~50 us. Only plain (no
    countdown) publishes of the one task take this path; the pipeline tests prove a real worker runs
    what it publishes.
    """

    def __init__(self, broker_url: str) -> None:
        import redis

        app = _app()
        # Short timeouts: the request that rings waits for this publish.
        self.pool = redis.ConnectionPool.from_url(broker_url, socket_connect_timeout=0.5, socket_timeout=2)
        self.connection: Any = None
        self.lock = threading.Lock()
        self.origin = f"{os.getpid()}@{socket.gethostname()}"
        self.timelimit = [app.conf.task_time_limit, app.conf.task_soft_time_limit]

    def message(self, pks: list[int]) -> bytes:
        task_id = secrets.token_hex(16)
        ids = json.dumps(pks)
        body = base64.b64encode(f"[[{ids}], {{}}, {_EMBED}]".encode()).decode()
        return self.template.format(
            body=body, task_id=task_id, argsrepr=json.dumps(f"({ids},)"), tag=secrets.token_hex(16)
        ).encode()

    @cached_property
    def template(self) -> str:
        """The envelope with everything but the ids pre-serialised (building it per message costs more
        than the LPUSH); placeholders in braces, literal braces doubled."""
        envelope = {
            "body": "@body@",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": Tasks.SEND_MESSAGES, "id": "@task_id@", "shadow": None, "eta": None,
                "expires": None, "group": None, "group_index": None, "retries": 0,
                "timelimit": self.timelimit,
                "root_id": "@task_id@", "parent_id": None, "argsrepr": "@argsrepr@", "kwargsrepr": "{}",
                "origin": self.origin, "ignore_result": True, "replaced_task_nesting": 0,
                "stamped_headers": None, "stamps": {},
            },
            "properties": {
                "correlation_id": "@task_id@", "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": Queues.SEND}, "priority": 0,
                "body_encoding": "base64", "delivery_tag": "@tag@",
            },
        }  # fmt: skip
        text = json.dumps(envelope).replace("{", "{{").replace("}", "}}")
        for name in ("body", "task_id", "tag"):
            text = text.replace(f'"@{name}@"', f'"{{{name}}}"')
        return text.replace('"@argsrepr@"', "{argsrepr}")

    def publish(self, chunks: list[list[int]]) -> None:
        payloads = [self.message(c) for c in chunks]
        with self.lock:
            if self.connection is None:
                self.connection = self.pool.make_connection()
            try:
                self.connection.send_command("LPUSH", Queues.SEND, *payloads)
                self.connection.read_response()
            except Exception:
                self.connection.disconnect()
                self.connection = None
                raise


_EMBED = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})
_doorbell: RedisDoorbell | None = None
_doorbell_pid: int | None = None


def _fast_doorbell() -> RedisDoorbell | None:
    global _doorbell, _doorbell_pid
    s = settings()
    if not s.broker_is_redis:
        return None
    if _doorbell is None or _doorbell_pid != os.getpid():
        _doorbell, _doorbell_pid = RedisDoorbell(s.broker_url), os.getpid()
    return _doorbell


def ring_send(pks: Sequence[int], countdown: float = 0.0) -> bool:
    """Publish send tasks for these messages, in batches. False if the broker could not be reached."""
    global _broken_until
    if not pks:
        return True
    if time.monotonic() < _broken_until:
        return False
    size = max(1, settings().send_batch_size)
    chunks = [list(pks[i : i + size]) for i in range(0, len(pks), size)]
    fast = _fast_doorbell() if not countdown else None
    for i, chunk in enumerate(chunks):
        try:
            if fast is not None:
                fast.publish(chunks[i:])
                break
            _app().send_task(
                Tasks.SEND_MESSAGES,
                (chunk,),
                queue=Queues.SEND,
                routing_key=Queues.SEND,
                countdown=countdown or None,
                retry=False,
            )
        except Exception as exc:
            _broken_until = time.monotonic() + BREAKER_SECONDS
            left = sum(len(c) for c in chunks[i:])
            log.warning("could not publish %d message(s); the sweep will: %s", left, type(exc).__name__)
            return False
    return True


# Longer waits are not held in the broker as countdown tasks (a worker holds those in memory, and past
# the visibility timeout they run twice): the message waits in the database and the sweep rings for it.
MAX_COUNTDOWN = 60.0


def ring_later(items: Iterable[tuple[int, float]]) -> None:
    """Ring for (message pk, delay) pairs, grouping those due within the same tenth of a second."""
    groups: dict[float, list[int]] = defaultdict(list)
    for pk, delay in items:
        if delay <= MAX_COUNTDOWN:
            groups[round(delay, 1)].append(pk)
    for delay, pks in sorted(groups.items()):
        ring_send(pks, countdown=delay)


def publish_now(task: str, args: tuple[Any, ...]) -> None:
    """Publish a task (by name, to its routed queue) from a request: on a connection that gives up after
    one quick retry, so that a broker outage costs the request a moment, not kombu's default reconnect
    loop. Raises on failure (the caller falls back); skips straight to raising while the breaker is open."""
    global _broken_until
    app = _app()
    queue = ROUTES[task]
    if time.monotonic() < _broken_until:
        raise ConnectionError("the broker failed a moment ago")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
            app.send_task(task, args, queue=queue, routing_key=queue, retry=False, connection=conn)
    except Exception:
        _broken_until = time.monotonic() + BREAKER_SECONDS
        raise


def ring_soon(pks: Sequence[int]) -> None:
    """Ring for messages just committed by a request: never raises (the sweep covers a failure)."""
    ring_send(list(pks))


def ring_followups(followups: Followups) -> None:
    """Ring what a committed step of the domain says must be rung."""
    ring_send(followups.now)
    ring_later(followups.later)


def _app() -> Any:
    from smsqueue.tasks.celery_app import app  # here: the app's import configures Celery

    return app
