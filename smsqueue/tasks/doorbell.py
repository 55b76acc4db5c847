"""Publishing send tasks after a commit. The broker is a doorbell: a publish that fails (Redis down) is
logged and left to the republish sweep, which finds the message still `queued` in the database."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

from smsqueue.config import settings
from smsqueue.queues import Queues

log = logging.getLogger(__name__)


def ring_send(pks: Sequence[int], countdown: float = 0.0) -> bool:
    """Publish send tasks for these messages, in batches. False if the broker could not be reached."""
    from smsqueue.tasks.send import send_messages

    size = max(1, settings().send_batch_size)
    ok = True
    for i in range(0, len(pks), size):
        chunk = list(pks[i : i + size])
        try:
            send_messages.apply_async(
                (chunk,), queue=Queues.SEND, routing_key=Queues.SEND, countdown=countdown or None, retry=False
            )
        except Exception as exc:
            ok = False
            log.warning("could not publish %d message(s); the sweep will: %s", len(chunk), type(exc).__name__)
    return ok


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
