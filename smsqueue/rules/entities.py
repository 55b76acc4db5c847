"""The rules of a legal entity's settings beyond the shape of a request: the 230-FZ settings as columns
(whole, or merged into the stored ones), the order of the limits, the providers an entity body names
(known, listed once) and how they become its links, and the check of one entity, provider, number and
moment. The admin API calls these; the writes themselves go through `rules.admin`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from smsqueue import law
from smsqueue.db import session_scope
from smsqueue.errors import FieldCode, FieldError
from smsqueue.models import EntityProvider, LegalEntity, Provider
from smsqueue.rules import admin, identification, limits
from smsqueue.rules.check import Assessment, EntityRules, assess, recipient_zone, window_zones
from smsqueue.rules.subjects import scope_of, subjects_of

# 230-FZ setting -> column of legal_entities
FZ_COLUMNS = {
    "enabled": "fz_enabled",
    "per_day": "fz_per_day",
    "per_week": "fz_per_week",
    "per_month": "fz_per_month",
    "holidays_as_weekends": "fz_holidays_as_weekends",
    "on_limit": "fz_on_limit",
    "identification": "fz_identification",
    "limit_group": "fz_limit_group",
    "rolling_windows": "fz_rolling_windows",
    "unknown_zone": "fz_unknown_zone",
}
FZ_NULLABLE = ("limit_group",)  # null: the entity counts alone
# 230-FZ hours setting ({"from": "HH:MM", "to": "HH:MM"}) -> its two columns
FZ_HOURS_COLUMNS = {
    "weekday_hours": ("fz_weekday_from", "fz_weekday_to"),
    "weekend_hours": ("fz_weekend_from", "fz_weekend_to"),
}
FZ_SETTINGS = tuple(k for k in (*FZ_COLUMNS, *FZ_HOURS_COLUMNS) if k not in FZ_NULLABLE)  # not null
LIMIT_FIELDS = tuple(law.LIMITS)  # per_day, per_week, per_month: each at least the one before


# --- 230-FZ settings ----------------------------------------------------------------------------------


def fz_columns(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Columns for the 230-FZ settings given (as the API spells them: hours as {"from", "to"})."""
    columns: dict[str, Any] = {}
    for field, column in FZ_COLUMNS.items():
        if field in settings:
            columns[column] = settings[field]
    for field, (col_from, col_to) in FZ_HOURS_COLUMNS.items():
        if field in settings:
            columns[col_from], columns[col_to] = settings[field]["from"], settings[field]["to"]
    return columns


def merged_limits(entity: LegalEntity, columns: Mapping[str, Any]) -> tuple[int, int, int]:
    """(per_day, per_week, per_month) as they will be stored: the changed columns, the others kept."""
    day, week, month = (columns.get(f"fz_{k}", getattr(entity, f"fz_{k}")) for k in LIMIT_FIELDS)
    return day, week, month


def limit_errors(per_day: int, per_week: int, per_month: int, prefix: str = "fz.") -> list[FieldError]:
    """The limits are nested: a week allows at least a day's, a month at least a week's."""
    errors = []
    if per_week < per_day:
        errors.append(
            FieldError(
                f"{prefix}per_week",
                FieldCode.LIMIT_BELOW_SHORTER_PERIOD,
                f"per_week ({per_week}) must be at least per_day ({per_day})",
            )
        )
    if per_month < per_week:
        errors.append(
            FieldError(
                f"{prefix}per_month",
                FieldCode.LIMIT_BELOW_SHORTER_PERIOD,
                f"per_month ({per_month}) must be at least per_week ({per_week})",
            )
        )
    return errors


def identification_errors(
    mode: str, creditor_name: str | None, contact_phone: str | None
) -> list[FieldError]:
    """137-FZ identification needs both fields to name the creditor with (as they will be stored)."""
    if not identification.incomplete(mode, creditor_name, contact_phone):
        return []
    return [
        FieldError(
            "fz.identification",
            FieldCode.IDENTIFICATION_INCOMPLETE,
            f"{mode!r} needs both creditor_name and contact_phone set on the entity",
        )
    ]


# --- the providers an entity body names ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkItem:
    """One entry of an entity body's `providers`; None (and `sender_given` false) for a field left out."""

    provider: str
    priority: int | None = None
    sender: str | None = None
    sender_given: bool = False
    enabled: bool | None = None


def _unknown_provider(index: int, code: str) -> FieldError:
    return FieldError(f"providers[{index}].provider", FieldCode.UNKNOWN_PROVIDER, f"no provider {code!r}")


def resolve_link_items(
    session: Session, items: Sequence[LinkItem]
) -> tuple[list[tuple[LinkItem, Provider]], list[FieldError]]:
    """The providers named in an entity body's `providers`, and the errors of unknown or repeated codes."""
    errors: list[FieldError] = []
    resolved: list[tuple[LinkItem, Provider]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.provider in seen:
            errors.append(
                FieldError(
                    f"providers[{index}].provider",
                    FieldCode.DUPLICATE,
                    f"provider {item.provider!r} is listed twice",
                )
            )
            continue
        seen.add(item.provider)
        provider = admin.provider_by_code(session, item.provider)
        if provider is None:
            errors.append(_unknown_provider(index, item.provider))
            continue
        resolved.append((item, provider))
    return resolved, errors


def apply_links(
    session: Session, entity: LegalEntity, resolved: Sequence[tuple[LinkItem, Provider]], *, replace: bool
) -> None:
    """Link the listed providers (a priority left out is the item's place in the list, 1 first; other
    fields left out keep the link's values, or take the defaults on a new link). With `replace`, the
    providers not listed are unlinked."""
    current = {link.provider_id: link for link, _ in admin.links_of(session, entity)}
    for index, (item, provider) in enumerate(resolved, start=1):
        link = current.get(provider.id)
        admin.link_provider(
            session,
            entity,
            provider,
            priority=item.priority if item.priority is not None else index,
            sender=item.sender if item.sender_given or link is None else link.sender,
            enabled=item.enabled if item.enabled is not None else (link.enabled if link else True),
        )
    if replace:
        listed = {provider.id for _, provider in resolved}
        for provider_id in current:
            if provider_id not in listed:
                admin.unlink_provider(session, entity, session.get(Provider, provider_id))  # type: ignore[arg-type]


def put_link(
    session: Session, entity: LegalEntity, provider: Provider, item: LinkItem
) -> tuple[EntityProvider, bool]:
    """Add or update one provider of an entity; whether the link is new. Fields left out keep their
    value on an update; on an add, priority comes after the entity's last provider, sender is none and
    enabled is true."""
    current = session.get(EntityProvider, (entity.id, provider.id))
    if current is None:
        priority = item.priority if item.priority is not None else admin.next_priority(session, entity)
        sender = item.sender
        enabled = item.enabled if item.enabled is not None else True
    else:
        priority = item.priority if item.priority is not None else current.priority
        sender = item.sender if item.sender_given else current.sender
        enabled = item.enabled if item.enabled is not None else current.enabled
    return admin.link_provider(session, entity, provider, priority=priority, sender=sender, enabled=enabled)


# --- checks after a body failed validation ------------------------------------------------------------


def later_checks(data: Any, invalid: set[str]) -> list[FieldError]:
    """The limit order and the provider codes of an entity body (raw JSON) whose other fields failed
    validation, on the fields that passed (`invalid`: the paths that did not): so one 422 lists them all."""
    if not isinstance(data, dict):
        return []
    errors: list[FieldError] = []
    fz = data.get("fz")
    if isinstance(fz, dict) and not invalid & {"fz", *(f"fz.{k}" for k in LIMIT_FIELDS)}:
        given = [fz.get(k, default) for k, default in law.LIMITS.items()]
        if all(type(v) is int for v in given):
            errors += limit_errors(*given)
    items = data.get("providers")
    if isinstance(items, list) and "providers" not in invalid:
        codes = {
            i: item["provider"]
            for i, item in enumerate(items)
            if isinstance(item, dict) and isinstance(item.get("provider"), str)
            and f"providers[{i}].provider" not in invalid and f"providers[{i}]" not in invalid
        }  # fmt: skip
        with session_scope() as session:
            for i, code in codes.items():
                if admin.provider_by_code(session, code) is None:
                    errors.append(_unknown_provider(i, code))
    return errors


# --- the check ----------------------------------------------------------------------------------------


def check_link(
    session: Session,
    entity: LegalEntity,
    provider: Provider,
    to: str,
    at: datetime,
    recipient_timezone: str | None,
    debtor: str | None = None,
) -> tuple[Assessment, dict[str, int]]:
    """May `entity` send to `to` (about `debtor`) through `provider` at `at`: judged by the sender's own
    rules and counters (counting nothing). A message with a debtor is held to both the debtor's and the
    number's counts; the counts returned are the debtor's when one is given, else the number's: those of
    the day, week and month containing `at`, and of the rolling 24 h, 7 d and 30 d ending at it."""
    link = session.get(EntityProvider, (entity.id, provider.id))
    provider_allowed = link is not None and link.enabled and provider.enabled
    rules = EntityRules.of(entity)
    tz = recipient_zone(to, recipient_timezone, entity.timezone)
    zones = window_zones(to, recipient_timezone, rules.unknown_zone, tz)
    scope = scope_of(entity)
    each = [limits.counts(session.connection(), scope, s, at, tz) for s in subjects_of(to, debtor)]
    judged = {kind: max(c[kind] for c in each) for kind in each[0]}
    assessment = assess(rules, at, tz, judged, provider_allowed=provider_allowed, zones=zones)
    return assessment, each[0]
