"""A job's references: a row whose reference an earlier accepted row of the same job has is invalid
(`duplicate_reference`), decided in row order while later batches are still being stored.

Asking the database for every row's reference cost more than a tenth of a CSV job's database time,
and it could see only committed batches. So the job's runner remembers the references it has
accepted in a small Bloom filter (no false negatives) and, exactly, those of the batches not yet known
to be committed; only a reference the filter may have seen, and that no uncommitted batch has, is
looked up in the database. A resumed job first fills the filter from its stored messages.
"""

from __future__ import annotations

from collections import deque

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from smsqueue.db import transaction
from smsqueue.messages import messages_t

m = messages_t.c
_BITS = 1 << 25  # 4 MiB: under 0.5% false positives at a million references (two probes)
_MASK = _BITS - 1


class References:
    def __init__(self, entity_id: int, job_id: object) -> None:
        self.entity_id = entity_id
        self.job_id = job_id
        self.bits = bytearray(_BITS // 8)
        self.uncommitted: deque[set[str]] = deque()  # per batch handed on, oldest first

    # Two probes from one hash: its low and high 32 bits. Written out in _add and _maybe, which run for
    # every row (a helper's call and a generator cost more than the probes themselves).
    def _add(self, ref: str) -> None:
        h = hash(ref)  # str hashes are per process, as this filter is
        bits, a, b = self.bits, h & _MASK, (h >> 32) & _MASK
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)

    def _maybe(self, ref: str) -> bool:
        h = hash(ref)
        bits, a, b = self.bits, h & _MASK, (h >> 32) & _MASK
        return bool(bits[a >> 3] & (1 << (a & 7))) and bool(bits[b >> 3] & (1 << (b & 7)))

    def load(self) -> None:
        """Remember the references of the job's stored messages (a job resumed after a restart)."""
        with transaction() as conn:
            result = conn.execution_options(yield_per=10_000).execute(
                select(m.reference).where(m.job_id == self.job_id, m.reference.is_not(None))
            )
            for ref in result.scalars():
                self._add(ref)

    def taken(self, refs: set[str]) -> set[str]:
        """Which of these an accepted row of an earlier batch has."""
        maybe = {r for r in refs if self._maybe(r)}
        found = {r for r in maybe if any(r in batch for batch in self.uncommitted)}
        ask = sorted(maybe - found)
        if ask:
            # Every batch no longer listed as uncommitted has committed: the database has its rows.
            with transaction() as conn:
                # On PostgreSQL one array parameter (an IN list renders a bind per value).
                among = (
                    m.reference == any_(bindparam("refs", ask, type_=ARRAY(String)))
                    if conn.dialect.name == "postgresql"
                    else m.reference.in_(ask)
                )
                found |= set(
                    conn.execute(
                        select(m.reference).where(
                            m.legal_entity_id == self.entity_id, among, m.job_id == self.job_id
                        )
                    ).scalars()
                )
        return found

    def handed_on(self, refs: set[str]) -> None:
        """A batch with these accepted references goes to be stored."""
        for ref in refs:
            self._add(ref)
        self.uncommitted.append(refs)

    def committed(self) -> None:
        """The oldest batch handed on has committed."""
        self.uncommitted.popleft()
