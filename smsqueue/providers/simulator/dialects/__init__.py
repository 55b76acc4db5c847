"""The wire formats the simulator speaks, by provider kind.

A new dialect is one module here with a `Dialect` subclass (see `base.py`; `smsc.py` is a full
example), added to `DIALECTS` below: the simulator, its `--kind` choices and `Simulator(kind=...)`
all read this one table.
"""

from __future__ import annotations

from smsqueue.providers.simulator.dialects.base import Credentials, Dialect
from smsqueue.providers.simulator.dialects.iqsms import IqsmsDialect
from smsqueue.providers.simulator.dialects.smsaero import SmsAeroDialect
from smsqueue.providers.simulator.dialects.smsc import SmscDialect
from smsqueue.providers.simulator.dialects.smsru import SmsRuDialect
from smsqueue.providers.simulator.dialects.smstraffic import SmsTrafficDialect

DIALECTS: dict[str, type[Dialect]] = {
    d.kind: d for d in (SmscDialect, SmsRuDialect, SmsAeroDialect, SmsTrafficDialect, IqsmsDialect)
}


def dialect_for(kind: str, credentials: Credentials) -> Dialect:
    try:
        dialect = DIALECTS[kind]
    except KeyError:
        raise ValueError(f"unknown simulator kind {kind!r}; one of {', '.join(sorted(DIALECTS))}") from None
    return dialect(credentials)


__all__ = ["DIALECTS", "Credentials", "Dialect", "dialect_for"]
