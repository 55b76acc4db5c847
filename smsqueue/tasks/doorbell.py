"""Publishing send tasks after a commit. The broker is a doorbell: a publish that fails (Redis down) is
logged and left to the ring sweep, which finds the message still `queued` in the database. After a
failure, publishing is skipped for a second, so an outage costs a request at most one short attempt; once
a publish goes through again, the sweep is told to re-ring every due message at once (`LOST_MARKER`).
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
from smsqueue.logs import request_id_var
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
    Redis client object per message; one LPUSH on a kept connection costs ~50 us. Every publish of
    the one task takes this path on Redis; the pipeline tests prove a real worker runs what it
    publishes.
    """

    def __init__(self, broker_url: str) -> None:
        import redis

        app = _app()
        # Short timeouts: the request that rings waits for this publish. The pool only parses the URL:
        # connections are made by `_connect`, outside its count (redis-py 8 caps a pool at 100
        # connections ever made and not released, and a dropped kept connection is never released).
        self.pool = redis.ConnectionPool.from_url(broker_url, socket_connect_timeout=0.5, socket_timeout=2)
        self.connection: Any = None
        self.lost = False  # a publish failed since the last one that went through
        self.lock = threading.Lock()
        self.origin = f"{os.getpid()}@{socket.gethostname()}"
        self.timelimit = [app.conf.task_time_limit, app.conf.task_soft_time_limit]

    def message(self, pks: list[int]) -> bytes:
        task_id = secrets.token_hex(16)
        ids = json.dumps(pks)
        body = base64.b64encode(f"[[{ids}], {{}}, {_EMBED}]".encode()).decode()
        return self.template.format(
            body=body,
            task_id=task_id,
            argsrepr=json.dumps(f"({ids},)"),
            tag=secrets.token_hex(16),
            request_id=json.dumps(request_id_var.get()),  # the request's id follows into the worker
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
                "stamped_headers": None, "stamps": {}, "request_id": "@request_id@",
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
        return text.replace('"@argsrepr@"', "{argsrepr}").replace('"@request_id@"', "{request_id}")

    def publish(self, chunks: list[list[int]]) -> None:
        """LPUSH the doorbells. Raises only when the broker cannot be reached (see `_send`)."""
        self._send("LPUSH", Queues.SEND, *[self.message(c) for c in chunks])

    def ring_once(self) -> bool:
        """Push one doorbell unless one is already waiting (`RUNG_KEY` set, one round trip, atomic): a
        burst of requests rings once, and the worker that answers claims what they all stored. True
        if this call pushed it."""
        return bool(self._send("EVAL", _RING_ONCE, 2, RUNG_KEY, Queues.SEND, RUNG_TTL_MS, self.message([])))

    def answer(self) -> None:
        """A worker took a doorbell: the next request rings again. Done before the worker claims, so a
        message stored after the claim's query has begun finds the key gone and rings."""
        self._send("DEL", RUNG_KEY)

    def _send(self, *command: Any) -> Any:
        """One command on the kept connection. A kept connection that fails is dropped and the command
        tried once more on a new one: after a broker restart every kept connection is dead, and the
        first publish on it must not be the one that is lost. Raises only when a new connection fails
        too (the broker is down)."""
        with self.lock:
            while True:
                fresh = self.connection is None
                if fresh:
                    self.connection = self._connect()
                try:
                    self.connection.send_command(*command)
                    answer = self.connection.read_response()
                    if self.lost:
                        # Doorbells were lost since the last good publish: tell the sweep (see
                        # `broker_lost_doorbells`) to ring every due message again at once.
                        self.connection.send_command("DEL", LOST_MARKER)
                        self.connection.read_response()
                        self.lost = False
                    return answer
                except Exception:
                    self.connection.disconnect()
                    self.connection = None
                    if fresh:
                        self.lost = True
                        raise

    def _connect(self) -> Any:
        return self.pool.connection_class(**self.pool.connection_kwargs)

    def broker_lost_doorbells(self) -> bool:
        """True once after the broker lost doorbells: restarted empty (the marker key is gone with
        everything else) or a publisher here or elsewhere failed to ring (it deleted the marker when it
        could publish again). One SET per sweep run, never on the hot path."""
        with self.lock:
            connection = self._connect()
            try:
                connection.send_command("SET", LOST_MARKER, "1", "NX")
                return connection.read_response() is not None
            finally:
                connection.disconnect()


# The key whose absence in the broker's Redis says that doorbells may have been lost.
LOST_MARKER = "smsqueue:doorbells-intact"
# Set while a requests' doorbell waits in the queue (see `ring_once`). It expires, so a doorbell lost
# with the key still set (a worker killed holding it unacknowledged) stops suppressing rings soon.
RUNG_KEY = "smsqueue:send-doorbell-waiting"
RUNG_TTL_MS = 2000
_RING_ONCE = (
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then "
    "return redis.call('LPUSH', KEYS[2], ARGV[2]) end return 0"
)
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


def ring_send(pks: Sequence[int]) -> bool:
    """Publish send tasks for these messages, in batches. False if the broker could not be reached.

    A message due later waits in the database (`ring_at`) and the sweep rings it then, so a broker that
    loses its delayed tasks (a restart) loses nothing that must happen (see also `ring_later`)."""
    global _broken_until
    if not pks:
        return True
    fast = _fast_doorbell()
    if time.monotonic() < _broken_until:
        if fast is not None:
            fast.lost = True
        return False
    size = max(1, settings().send_batch_size)
    chunks = [list(pks[i : i + size]) for i in range(0, len(pks), size)]
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
                retry=False,
                headers={"request_id": request_id_var.get()},
            )
        except Exception as exc:
            _broken_until = time.monotonic() + BREAKER_SECONDS
            left = sum(len(c) for c in chunks[i:])
            log.warning("could not publish %d message(s); the sweep will: %s", left, type(exc).__name__)
            return False
    return True


def broker_lost_doorbells() -> bool:
    """Whether the broker may have lost doorbells since this was last asked (see RedisDoorbell). False
    for a broker that is not Redis, and when the broker cannot be asked (nothing can be rung then)."""
    fast = _fast_doorbell()
    if fast is None:
        return False
    try:
        return fast.broker_lost_doorbells()
    except Exception as exc:
        log.warning("could not ask the broker whether doorbells were lost: %s", type(exc).__name__)
        return False


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


def ring_job(job_pk: int) -> None:
    """Start a job just committed by a request: never raises (the jobs sweep starts one whose task was
    lost, once its start-by time has passed)."""
    try:
        publish_now(Tasks.RUN_JOB, (job_pk,))
    except Exception as exc:
        log.warning("could not publish job %d; the sweep will: %s", job_pk, type(exc).__name__)


def ring_soon(pks: Sequence[int]) -> None:
    """Ring for messages just committed by a request: never raises (the sweep covers a failure).

    On Redis, one doorbell waits at a time whatever the number of requests (`RedisDoorbell.ring_once`):
    the worker claims every due message by query, so a burst of requests costs one task, not one each."""
    global _broken_until
    fast = _fast_doorbell()
    if fast is None:
        ring_send(list(pks))
        return
    if time.monotonic() < _broken_until:
        fast.lost = True
        return
    try:
        fast.ring_once()
    except Exception as exc:
        _broken_until = time.monotonic() + BREAKER_SECONDS
        log.warning("could not ring for %d message(s); the sweep will: %s", len(pks), type(exc).__name__)


def ring_again() -> None:
    """One more doorbell, from a send task that handed over with messages still due."""
    if _fast_doorbell() is not None:
        ring_soon([])
        return
    try:
        _app().send_task(Tasks.SEND_MESSAGES, ([],), queue=Queues.SEND, routing_key=Queues.SEND, retry=False)
    except Exception as exc:
        log.warning("could not ring again; the sweep will: %s", type(exc).__name__)


def answer_doorbell() -> None:
    """Called by the send task before it claims: requests from now on ring again (see `ring_soon`)."""
    fast = _fast_doorbell()
    if fast is None:
        return
    try:
        fast.answer()
    except Exception as exc:  # the key expires by itself; the claim goes on
        log.warning("could not answer the doorbell: %s", type(exc).__name__)


def ring_followups(followups: Followups) -> None:
    """Ring what a committed step of the domain says must be rung."""
    ring_send(followups.now)
    ring_later(followups.later)


def ring_later(items: Iterable[tuple[int, float]]) -> None:
    """Ring for (message pk, delay) pairs with a countdown, grouping those due within the same tenth of a
    second. A timing aid only (see messages.Followups): a lost one is rung by the sweep."""
    groups: dict[float, list[int]] = defaultdict(list)
    for pk, delay in items:
        groups[round(delay, 1)].append(pk)
    for delay, pks in sorted(groups.items()):
        if time.monotonic() < _broken_until:
            return
        try:
            _app().send_task(
                Tasks.SEND_MESSAGES,
                (pks,),
                queue=Queues.SEND,
                routing_key=Queues.SEND,
                countdown=delay,
                retry=False,
            )
        except Exception as exc:
            log.warning(
                "could not publish %d delayed ring(s); the sweep will: %s", len(pks), type(exc).__name__
            )
            return


def _app() -> Any:
    from smsqueue.tasks.celery_app import app  # here: the app's import configures Celery

    return app
