"""What the simulator is told to do: the behaviour knobs, checked and coerced from JSON or CLI flags.

Keys: `delivery_delay` (s, default 0.5; 0 = at once), `undelivered_share` (0..1), `fail_http` (answer
this HTTP status), `fail_http_times` (only the next N requests; null = until changed), `error_code`
(answer this provider error code), `error_code_times`, `delay_seconds` (take the request at once but
answer this late), `delay_times`, `affects` (which operations the last three apply to: any of "send",
"status", "balance"; default ["send"]), `endpoints` (which endpoints they apply to: "main", and
"reserve" for a dialect with a reserve path, SMS Traffic's; default both), `report_url` (push delivery
reports there), `balance` (account money, RUB), `price` (per SMS part), `bad_numbers` (numbers, as
digits, the provider refuses as invalid though they look like numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

OPERATIONS = ("send", "status", "balance")
ENDPOINTS = ("main", "reserve")


@dataclass
class Behaviour:
    """What the simulator does; every field can be changed at run time."""

    delivery_delay: float = 0.5
    undelivered_share: float = 0.0
    fail_http: int | None = None
    fail_http_times: int | None = None
    error_code: int | str | None = None
    error_code_times: int | None = None
    delay_seconds: float = 0.0
    delay_times: int | None = None
    affects: tuple[str, ...] = ("send",)
    endpoints: tuple[str, ...] = ENDPOINTS
    report_url: str | None = None
    balance: float = 10000.0
    price: float = 1.5
    bad_numbers: tuple[str, ...] = ()

    def changed(self, changes: Mapping[str, Any]) -> Behaviour:
        """A copy with `changes` applied; ValueError names every bad key or value."""
        unknown = sorted(set(changes) - behaviour_keys())
        if unknown:
            raise ValueError(f"unknown behaviour keys: {', '.join(unknown)}")
        values = {name: _coerce(name, value) for name, value in changes.items()}
        return replace(self, **values)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["affects"] = list(self.affects)
        data["endpoints"] = list(self.endpoints)
        data["bad_numbers"] = list(self.bad_numbers)
        return data


def behaviour_keys() -> set[str]:
    return {f.name for f in fields(Behaviour)}


_FLOATS = {"delivery_delay", "undelivered_share", "delay_seconds", "balance", "price"}
_OPTIONAL_INTS = {"fail_http", "fail_http_times", "error_code_times", "delay_times"}


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _FLOATS:
            number = float(value)
            if number < 0 or (name == "undelivered_share" and number > 1):
                raise ValueError
            return number
        if name in _OPTIONAL_INTS:
            return None if value is None else int(value)
        if name == "error_code":
            return None if value is None else (int(value) if str(value).lstrip("-").isdigit() else str(value))
        if name == "report_url":
            return str(value) if value else None
        if name in ("affects", "endpoints"):
            chosen = (value,) if isinstance(value, str) else tuple(value)
            if not set(chosen) <= set(OPERATIONS if name == "affects" else ENDPOINTS):
                raise ValueError
            return chosen
        if name == "bad_numbers":
            numbers = (value,) if isinstance(value, str) else tuple(value or ())
            return tuple("".join(ch for ch in str(n) if ch.isdigit()) for n in numbers)
    except (TypeError, ValueError):
        raise ValueError(f"bad value for {name}: {value!r}") from None
    raise ValueError(f"unknown behaviour key: {name}")
