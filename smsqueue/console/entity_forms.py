"""The entity page's forms as the admin API's PATCH bodies, and back: each form's fields are named by
the JSON path of the setting they hold (`send_window.from`, `fz.per_week`, `providers[2].sender`), so
the API's field errors land next to the field that caused them. No rule is checked here: the bodies go
through `EntityPatch` and `legal_entities.edit_entity`, as a PATCH from the API does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import smsqueue.console.strings as t
from smsqueue.errors import FieldError

FORMS = ("window", "fz", "providers")
MAX_ROWS = 51  # the API takes 50 providers a body; one more row is the add row
LIMITS = ("per_day", "per_week", "per_month")
HOURS = ("weekday_hours", "weekend_hours")
FZ_FLAGS = ("enabled", "holidays_as_weekends")
_ITEM = re.compile(r"^providers\[(\d+)\]")


@dataclass
class Body:
    """A form as a PATCH body; `rows[j]` is the form row of the body's providers[j]."""

    data: dict[str, Any]
    rows: list[int] = field(default_factory=list)


def _number(value: str) -> Any:
    """A whole number typed into a form as an int; anything else as typed, for the model to refuse."""
    text = value.strip()
    return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text


def _checked(form: Mapping[str, str], name: str) -> bool:
    return name in form


def body_of(which: str, form: Mapping[str, str]) -> Body:
    if which == "window":
        return Body(
            {
                "send_window": {
                    "from": form.get("send_window.from", "").strip(),
                    "to": form.get("send_window.to", "").strip(),
                },
                "on_window": form.get("on_window", ""),
            }
        )
    if which == "fz":
        fz: dict[str, Any] = {name: _checked(form, f"fz.{name}") for name in FZ_FLAGS}
        fz.update({name: _number(form.get(f"fz.{name}", "")) for name in LIMITS})
        for name in HOURS:
            fz[name] = {k: form.get(f"fz.{name}.{k}", "").strip() for k in ("from", "to")}
        fz["on_limit"] = form.get("fz.on_limit", "")
        return Body({"fz": fz})
    items, rows = [], []
    for row in range(MAX_ROWS):
        code = form.get(f"providers[{row}].provider")
        if code is None:
            break
        if not code or _checked(form, f"providers[{row}].remove"):
            continue  # the add row left empty, or a provider to unlink
        priority = form.get(f"providers[{row}].priority", "").strip()
        sender = form.get(f"providers[{row}].sender", "").strip()
        item = {
            "provider": code,
            "sender": sender or None,
            "enabled": _checked(form, f"providers[{row}].enabled"),
        }
        if priority:
            item["priority"] = _number(priority)
        items.append(item)
        rows.append(row)
    return Body({"providers": items}, rows)


def errors_by_field(errors: list[FieldError], body: Body) -> dict[str, str]:
    """The API's field errors as field name -> words, the body's provider index turned back into the
    form's row (the first error of a field is shown)."""
    out: dict[str, str] = {}
    for error in errors:
        name = error.field
        found = _ITEM.match(name)
        if found and int(found.group(1)) < len(body.rows):
            name = f"providers[{body.rows[int(found.group(1))]}]" + name[found.end() :]
        out.setdefault(name, t.field_error(error.code, error.message))
    return out


def values_of(entity: Mapping[str, Any]) -> dict[str, str]:
    """The form fields' values of an entity as the API renders it (`render_entity`)."""
    fz = entity["fz"]
    values = {
        "send_window.from": entity["send_window"]["from"],
        "send_window.to": entity["send_window"]["to"],
        "on_window": entity["on_window"],
        "fz.on_limit": fz["on_limit"],
    }
    for name in LIMITS:
        values[f"fz.{name}"] = str(fz[name])
    for name in FZ_FLAGS:
        values[f"fz.{name}"] = "on" if fz[name] else ""
    for name in HOURS:
        for k in ("from", "to"):
            values[f"fz.{name}.{k}"] = fz[name][k]
    return values


def submitted_values(which: str, form: Mapping[str, str]) -> dict[str, str]:
    """What a refused form had typed, to show it again (an unticked checkbox is absent from a post)."""
    if which == "window":
        return {k: form.get(k, "") for k in ("send_window.from", "send_window.to", "on_window")}
    if which == "fz":
        values = {k: v for k, v in form.items() if k.startswith("fz.")}
        for name in FZ_FLAGS:
            values[f"fz.{name}"] = "on" if _checked(form, f"fz.{name}") else ""
        return values
    return {}


def link_rows(links: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The providers table's rows of an entity's links (as the API renders them)."""
    return [
        {
            "provider": link["provider"],
            "priority": str(link["priority"]),
            "sender": link["sender"] or "",
            "enabled": link["enabled"],
            "remove": False,
        }
        for link in links
    ]


def submitted_rows(form: Mapping[str, str]) -> list[dict[str, Any]]:
    """The providers table as a refused form had it (the add row last, when a provider was chosen)."""
    rows = []
    for row in range(MAX_ROWS):
        code = form.get(f"providers[{row}].provider")
        if code is None:
            break
        if not code:
            continue  # the add row, left empty
        rows.append(
            {
                "provider": code,
                "priority": form.get(f"providers[{row}].priority", ""),
                "sender": form.get(f"providers[{row}].sender", ""),
                "enabled": _checked(form, f"providers[{row}].enabled"),
                "remove": _checked(form, f"providers[{row}].remove"),
            }
        )
    return rows
