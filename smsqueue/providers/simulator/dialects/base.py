"""What a dialect is: one provider's wire format (its paths, answers, errors and delivery report) over
the simulator's shared state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from smsqueue.providers.simulator.state import SimMessage, SimState
from smsqueue.providers.simulator.wire import Reply, SimRequest, first_values


@dataclass(frozen=True)
class Credentials:
    """What the simulator accepts. With none given, any credentials are; else only these."""

    login: str | None = None
    password: str | None = None
    apikey: str | None = None

    @property
    def configured(self) -> bool:
        return not (self.login is None and self.password is None and self.apikey is None)


class Dialect(ABC):
    kind: ClassVar[str]
    routes: ClassVar[dict[str, str]]  # path -> operation ("send", "status", "balance")
    # The same paths answer under `/reserve` too, as the provider's reserve endpoint (same account).
    has_reserve: ClassVar[bool] = False
    pushes_reports: ClassVar[bool] = True  # to the report URL; False: statuses are only asked for

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def operation(self, request: SimRequest) -> str | None:
        """The operation a request to one of `routes` is (for the behaviour and the counts); None: 404.
        A dialect with one path for everything (SMS Traffic) tells them apart by the request."""
        return self.routes.get(request.path)

    def reset(self) -> None:  # noqa: B027 - most dialects hold nothing of their own
        """Forget what the dialect holds of its own (with the simulator's reset)."""

    def parse(self, query: str, headers: Mapping[str, str], body: bytes) -> SimRequest:
        """The query string and a form body as params (UTF-8); a dialect with other encodings overrides."""
        raw = query
        if body and "x-www-form-urlencoded" in headers.get("Content-Type", ""):
            raw = f"{raw}&{body.decode('latin-1')}" if raw else body.decode("latin-1")
        return SimRequest(first_values(raw), headers, body)

    @abstractmethod
    def authenticate(self, request: SimRequest) -> Reply | None:
        """None when the credentials are acceptable, else the provider's bad-login answer."""

    @abstractmethod
    def error_reply(self, operation: str, code: int | str, request: SimRequest) -> Reply:
        """The provider's answer carrying its own error `code`."""

    @abstractmethod
    def send(self, state: SimState, request: SimRequest) -> Reply: ...

    @abstractmethod
    def status(self, state: SimState, request: SimRequest) -> Reply: ...

    @abstractmethod
    def balance(self, state: SimState, request: SimRequest) -> Reply: ...

    def report(self, message: SimMessage) -> tuple[bytes, str]:
        """The delivery report the provider pushes for a final message: (body, content type)."""
        raise NotImplementedError(f"{self.kind} pushes no reports")

    def reports(self, message: SimMessage) -> list[tuple[bytes, str]]:
        """Every report pushed for a final message (SMS Traffic pushes one per segment)."""
        return [self.report(message)]
