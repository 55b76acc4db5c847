"""Who a 230-FZ count is of: a limit *scope* (whose allowance) and a *subject* (to whom), as the two
strings that key the counter rows and their locks.

- Scope: an entity alone, `e:<entity id>`, or, with `fz.limit_group`, every entity of that group,
  `g:<group>` (a creditor and the agency working its debts share one allowance).
- Subject: a recipient number as stored (E.164, always starting with `+`), or a debtor, `d:<debtor>`
  (the caller's id of the person, whatever number a message goes to).

A message with a `debtor` is counted against (and held to the limits of) both its debtor and its number:
the debtor's count is the law's (per person, across their numbers), and the number's keeps a message
sent to that number without a debtor from adding a third SMS in a day to the same handset.
"""

from __future__ import annotations

import re
from typing import Any

DEBTOR_PREFIX = "d:"
# A limit group's name: as an entity code (1 to 64 lowercase Latin letters, digits, '-', '_').
LIMIT_GROUP_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_LIMIT_GROUP = re.compile(LIMIT_GROUP_PATTERN)


def valid_limit_group(name: str) -> bool:
    return _LIMIT_GROUP.fullmatch(name) is not None


Subject = tuple[str, str]  # (scope, subject)


def entity_scope(entity_id: int) -> str:
    """The scope of an entity counting alone (and of the stop-list entries made for it alone)."""
    return f"e:{entity_id}"


def scope_of(entity: Any) -> str:
    """The limit scope of a `legal_entities` row (or the ORM object)."""
    group = entity.fz_limit_group
    return f"g:{group}" if group else entity_scope(entity.id)


def debtor_subject(debtor: str) -> str:
    return DEBTOR_PREFIX + debtor


def subjects_of(recipient: str | None, debtor: str | None) -> tuple[str, ...]:
    """The subjects a message (or an interaction) counts against: the debtor first (its counts are the
    ones the check endpoint shows), then the number."""
    out = []
    if debtor:
        out.append(debtor_subject(debtor))
    if recipient:
        out.append(recipient)
    return tuple(out)
