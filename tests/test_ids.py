"""Message ids: UUIDv7 made without UUID()'s argument checks must still be ordinary UUIDs."""

from __future__ import annotations

import pickle
import time
import uuid

from smsqueue.ids import new_id


def test_an_id_is_a_version_7_uuid_like_any_other() -> None:
    made = new_id()
    again = uuid.UUID(str(made))
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert again == made and hash(again) == hash(made) and again.int == made.int
    assert pickle.loads(pickle.dumps(made)) == made
    assert {made: 1}[again] == 1


def test_ids_are_distinct_and_ordered_by_the_millisecond_they_were_made_in() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    stamps = [u.int >> 80 for u in ids]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
