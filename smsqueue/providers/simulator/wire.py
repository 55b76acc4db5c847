"""What goes over the simulator's wire, whatever the dialect: a decoded request, an answer, and the
small encodings dialects share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

_KNOWN_STATUSES = {s.value for s in HTTPStatus}


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


@dataclass
class SimRequest:
    params: dict[str, str]  # query string and form body, first value of each, decoded
    headers: Mapping[str, str]
    body: bytes
    json: Any = None
    path: str = ""  # the dialect's path (a reserve endpoint's prefix taken off)


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def text_reply(text: str, status: int = 200) -> Reply:
    return Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def http_phrase(status: int, unknown: str) -> str:
    """The reason phrase of `status`, or `unknown` for a code HTTP does not name (a test may ask for 599)."""
    return HTTPStatus(status).phrase if status in _KNOWN_STATUSES else unknown


def first_values(raw: str, encoding: str = "utf-8") -> dict[str, str]:
    """A query string or form body as name -> its first value, undecodable bytes replaced."""
    decoded = parse_qs(raw, keep_blank_values=True, encoding=encoding, errors="replace")
    return {name: values[0] for name, values in decoded.items()}


def form_body(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields, encoding="utf-8").encode("ascii")


def digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def money(amount: float) -> str:
    return f"{amount:.2f}"
