"""The registry of API operations. Each view is declared with the pydantic models that validate its input
and describe its answers; the same declarations make the OpenAPI document, so the two cannot drift."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/messages/{id}
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, Any] = field(default_factory=dict)  # status -> model, or a description
    auth: str = "any"  # "any" key, "admin" only, or "none"
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw OpenAPI fields (e.g. a non-JSON body)


OPERATIONS: list[Operation] = []

_FLASK_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")


def route(
    bp: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, Any] | None = None,
    auth: str = "any",
    description: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Register a view on a blueprint (whose url_prefix is empty) and record its operation."""

    def decorate(view: F) -> F:
        bp.add_url_rule(rule, endpoint=f"{view.__name__}_{method.lower()}", view_func=view, methods=[method])
        OPERATIONS.append(
            Operation(
                method=method.lower(),
                path=_FLASK_PARAM.sub(r"{\1}", rule),
                summary=summary,
                tag=tag,
                body=body,
                query=query,
                responses=responses or {},
                auth=auth,
                description=description,
                extra=extra or {},
            )
        )
        return view

    return decorate
