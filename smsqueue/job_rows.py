"""A job's CSV rows as messages: each row checked by the same field checks as the messages API (the
functions its request model calls) and rendered by the same function, without building a pydantic model
per row (at a million rows that cost as much as everything else together).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import PydanticCustomError

from smsqueue import ingest
from smsqueue.errors import FieldCode, FieldError
from smsqueue.ids import new_id
from smsqueue.message_fields import (
    MAX_DEBTOR,
    check_send_at,
    check_text,
    check_timezone,
    check_valid_until,
    parse_timestamp,
)
from smsqueue.messages import NewMessage
from smsqueue.phones import PhoneError, normalize_phone
from smsqueue.rules.identification import Identification, text_errors
from smsqueue.segments import count_segments
from smsqueue.templates import TemplateError, compile_template

TOO_MANY_FIELDS = "too_many_fields"
DUPLICATE_REFERENCE = "duplicate_reference"
TIMING = ("send_at", "valid_until", "recipient_timezone")
OPTIONAL = ("reference", "debtor", *TIMING)
KNOWN = ("to", "text", *OPTIONAL)
MAX_REFERENCE = 128


class HeaderProblem(ValueError):
    """The header cannot make messages (422 invalid_csv); the message says why."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each used column is in a row, and what every row of the job shares."""

    width: int
    to: int
    text: int | None
    reference: int | None  # columns most rows have, looked up directly
    debtor: int | None
    timing: dict[str, int]  # the other optional columns: send_at, valid_until, recipient_timezone
    placeholders: dict[str, int]  # placeholder -> column
    template: str | None
    template_text: str | None
    entity_id: int
    callback_url: str | None
    send_at: datetime | None
    job_id: uuid.UUID
    identification: Identification | None  # 137-FZ: the entity's rule for every row's text


def layout(
    columns: list[str],
    *,
    template: str | None,
    template_text: str | None,
    entity_id: int,
    callback_url: str | None,
    send_at: datetime | None,
    job_id: uuid.UUID,
    identification: Identification | None = None,
) -> Layout:
    """The columns used, or HeaderProblem: no `to`, no `text` without a template, a placeholder of the
    template with no column. Other columns are ignored."""
    index = {name: i for i, name in enumerate(columns)}
    if "to" not in index:
        if columns and columns[0] and (columns[0][0].isdigit() or columns[0][0] == "+"):
            raise HeaderProblem("the first row must be a header naming the columns (`to`, ...)")
        raise HeaderProblem("no `to` column in the header")
    placeholders: dict[str, int] = {}
    if template_text is not None:
        names = compile_template(template_text).placeholders
        missing = sorted(names - set(index))
        if missing:
            raise HeaderProblem(f"no column for the template's placeholders: {', '.join(missing)}")
        placeholders = {name: index[name] for name in names}
    elif "text" not in index:
        raise HeaderProblem("no `text` column in the header (and no template)")
    return Layout(
        width=len(columns),
        to=index["to"],
        text=index.get("text") if template_text is None else None,
        reference=index.get("reference"),
        debtor=index.get("debtor"),
        timing={name: index[name] for name in TIMING if name in index},
        placeholders=placeholders,
        template=template,
        template_text=template_text,
        entity_id=entity_id,
        callback_url=callback_url,
        send_at=send_at,
        job_id=job_id,
        identification=identification,
    )


def _check(errors: list[FieldError], field: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except PydanticCustomError as exc:
        errors.append(FieldError(field, exc.type, exc.message()))
    except PhoneError as exc:
        errors.append(FieldError(field, FieldCode.INVALID_PHONE, str(exc) or "not a valid phone number"))
    except TemplateError as exc:
        errors.extend(exc.errors)
    return None


def prepare(values: list[str], row: int, lay: Layout) -> ingest.Prepared | list[FieldError]:
    """One row (its cells, its number counting the header as 1) as a message to store, or its errors."""
    if len(values) > lay.width:
        return [FieldError("row", TOO_MANY_FIELDS, f"{len(values)} fields; the header has {lay.width}")]
    if len(values) < lay.width:
        values = values + [""] * (lay.width - len(values))
    errors: list[FieldError] = []
    raw_to = values[lay.to].strip()
    to = None
    # The two checks every row has are written out (no closure per row, as _check takes).
    if not raw_to:
        errors.append(FieldError("to", FieldCode.REQUIRED, "no number"))
    else:
        try:
            to = normalize_phone(raw_to)
        except PhoneError as exc:
            errors.append(FieldError("to", FieldCode.INVALID_PHONE, str(exc) or "not a valid phone number"))
    text: str | None = None
    if lay.template_text is not None:
        variables = {name: values[i] for name, i in lay.placeholders.items()}
        text = _check(errors, "text", lambda: ingest.rendered_text(lay.template_text, variables))  # type: ignore[arg-type]
    else:
        assert lay.text is not None
        try:
            text = check_text(values[lay.text])
        except PydanticCustomError as exc:
            errors.append(FieldError("text", exc.type, exc.message()))
    if text is not None and lay.identification is not None:
        text, wrong = text_errors(text, lay.identification)
        errors += wrong
    reference = None if lay.reference is None else values[lay.reference].strip() or None
    if reference is not None and len(reference) > MAX_REFERENCE:
        errors.append(FieldError("reference", FieldCode.TOO_LONG, f"at most {MAX_REFERENCE} characters"))
    debtor = None if lay.debtor is None else values[lay.debtor].strip() or None
    if debtor is not None and len(debtor) > MAX_DEBTOR:
        errors.append(FieldError("debtor", FieldCode.TOO_LONG, f"at most {MAX_DEBTOR} characters"))
    # (a comprehension is a function call per row in Python 3.11: none for a job without these columns)
    found = {name: values[i].strip() for name, i in lay.timing.items()} if lay.timing else {}
    send_at = lay.send_at
    if found.get("send_at"):
        send_at = _check(errors, "send_at", lambda: check_send_at(parse_timestamp(found["send_at"])))
    valid_until = None
    if found.get("valid_until"):
        valid_until = _check(
            errors, "valid_until", lambda: check_valid_until(parse_timestamp(found["valid_until"]), send_at)
        )
    zone = found.get("recipient_timezone") or None
    if zone is not None:
        _check(errors, "recipient_timezone", lambda: check_timezone(zone))
    if errors:
        return errors
    info = count_segments(text)
    return ingest.Prepared(
        NewMessage(
            id=new_id(),
            legal_entity_id=lay.entity_id,
            to=to,
            text=text,
            segments=info.segments,
            encoding=info.encoding,
            send_at=send_at,
            valid_until=valid_until,
            recipient_timezone=zone,
            callback_url=lay.callback_url,
            reference=reference,
            debtor=debtor,
            template=lay.template,
            job_id=lay.job_id,
            job_row=row,
        ),
        None,
    )
