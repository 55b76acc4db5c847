"""Message ids: UUIDs of version 7 (RFC 9562), time-ordered, so new rows land at the end of the id index
instead of on random pages of it, and an id tells roughly when it was made."""

from __future__ import annotations

import os
import threading
import time
import uuid

_BATCH = 4096  # ids' worth of random bytes read at once


class _Pool(threading.local):
    """Random bytes for ids, per thread: one system call per 4096 ids instead of one each (a CSV job
    makes a million, and each call let the GIL go to the job's writer thread and waited to get it back)."""

    data = b""
    at = 0


_pool = _Pool()


def _new_pool() -> None:
    global _pool
    _pool = _Pool()  # a forked child must not hand out the bytes its parent (or a sibling) will


os.register_at_fork(after_in_child=_new_pool)


def new_id() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    pool = _pool
    if pool.at + 10 > len(pool.data):
        pool.data, pool.at = os.urandom(10 * _BATCH), 0
    rand = int.from_bytes(pool.data[pool.at : pool.at + 10], "big")  # 74 random bits are used below
    pool.at += 10
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # the RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    # What UUID(int=value) makes, without its argument checks (the value is in range by construction):
    # they cost as much as everything above.
    made = _new_uuid(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made


_new_uuid = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown
