"""137-FZ identification: every electronic message of a creditor (or its representative) names it and
gives a contact phone. An entity's `fz.identification` says how: `off`, `require` (a message of an
FZ-enabled entity whose text lacks either is refused) or `append` (`"\\n<creditor_name>, <contact_phone>"`
is added to a text that lacks either, before its segments are counted).

One function, `identify`, is the text rule: the API's ingest calls it, and so can any other way messages
come in (CSV jobs), so that the stored and sent text is always the one it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsqueue.errors import FieldCode, FieldError
from smsqueue.message_fields import MAX_TEXT

OFF = "off"
REQUIRE = "require"
APPEND = "append"
MODES = (OFF, REQUIRE, APPEND)


class MissingIdentification(ValueError):
    """The text does not name the creditor and its contact phone, and the entity requires it."""


@dataclass(frozen=True, slots=True)
class Identification:
    mode: str  # off | require | append
    fz_enabled: bool
    creditor_name: str | None
    contact_phone: str | None

    @classmethod
    def of(cls, entity: object) -> Identification:
        """From a `legal_entities` row, the ORM object or the entity cache's info."""
        return cls(
            getattr(entity, "fz_identification", OFF) or OFF,
            bool(getattr(entity, "fz_enabled", True)),
            getattr(entity, "creditor_name", None),
            getattr(entity, "contact_phone", None),
        )


def incomplete(mode: str, creditor_name: str | None, contact_phone: str | None) -> bool:
    """`require` and `append` need both fields (the entity is refused with identification_incomplete)."""
    return mode != OFF and not (creditor_name and contact_phone)


def has_identification(text: str, creditor_name: str, contact_phone: str) -> bool:
    return creditor_name in text and contact_phone in text


def identify(text: str, rule: Identification) -> str:
    """The text to store and send: as given, or with the identification appended. Raises
    MissingIdentification when the entity requires it and the text lacks it. `require` applies to an
    FZ-enabled entity only (API.md); `append` whenever it is set (the entity asked for it)."""
    if rule.mode == OFF or not rule.creditor_name or not rule.contact_phone:
        return text  # an incomplete setting cannot be stored (identification_incomplete)
    if has_identification(text, rule.creditor_name, rule.contact_phone):
        return text
    if rule.mode == APPEND:
        return f"{text}\n{rule.creditor_name}, {rule.contact_phone}"
    if rule.fz_enabled:
        raise MissingIdentification(
            f"the text must name the creditor ({rule.creditor_name!r}) and its contact phone "
            f"({rule.contact_phone!r}) (137-FZ)"
        )
    return text


def text_errors(text: str, rule: Identification) -> tuple[str, list[FieldError]]:
    """`identify` as a field check, for every way messages come in (the API, a CSV job's rows): the text
    to store and send, or the errors of field `text` (missing_identification; too_long once appended)."""
    try:
        out = identify(text, rule)
    except MissingIdentification as exc:
        return text, [FieldError("text", FieldCode.MISSING_IDENTIFICATION, str(exc))]
    if len(out) > MAX_TEXT:
        return text, [
            FieldError("text", FieldCode.TOO_LONG, f"at most {MAX_TEXT} characters with the identification")
        ]
    return out, []
