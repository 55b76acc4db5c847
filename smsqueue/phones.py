"""Recipient numbers: normalisation to E.164 (Russian numbers only) and what a number tells about itself.

`phonenumbers` is the authority on what is a valid number. A full `phonenumbers.parse` of a formatted
number costs 10-20 us, so the common clean shapes (`+7`/`8`/`7`/nothing + ten digits, with the usual
separators) take a fast path that skips the parse but still asks `phonenumbers` whether the national
number is a valid Russian one. Anything the fast path does not accept goes through the full parse, so
both paths give the same answers (tests/test_phones.py checks that on many generated inputs).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType
from phonenumbers import timezone as pn_timezone

__all__ = ["PhoneError", "is_mobile", "normalize_phone", "number_timezone", "number_timezones"]

DEFAULT_REGION = "RU"
_RU_COUNTRY_CODE = 7

# What a person types between digits. phonenumbers would also take letters (vanity numbers such as
# 8-800-FLOWERS), extensions ("ext. 12", "#12"), "tel:" URIs and non-ASCII digits; none of these is a
# number an SMS can go to, so they are refused before phonenumbers sees them.
_SEPARATORS = " \t\u00a0-\u2010\u2011\u2012\u2013\u2014()."
_ALLOWED_CHARS = frozenset("0123456789+" + _SEPARATORS)
_DROP_SEPARATORS = str.maketrans("", "", _SEPARATORS)
# Longer than any plausibly formatted number; also bounds what the lru_cache keeps as keys.
_MAX_RAW_LENGTH = 64
# Per cache, per process: a 1000-number batch fits, and a few MB at most stay resident.
_CACHE_SIZE = 8192

# +7 / 8 (the Russian trunk prefix) / 7 / nothing, then the 10-digit national number.
_CLEAN_FORM = re.compile(r"(?:\+7|8|7)?(\d{10})")
_E164 = re.compile(r"\+[1-9]\d{1,14}")

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers when it knows no zone

PhoneErrorReason = Literal["malformed", "invalid", "not_russian"]


class PhoneError(ValueError):
    """A recipient number we cannot send to.

    `code` is always "invalid_phone", the API's field error code for `to`, so the web layer can use it
    as is. `reason` says why, for logs and the error message: "malformed" (not a phone number at all:
    empty, letters, unparseable), "invalid" (shaped like a number but not a valid one: wrong length,
    unassigned range) or "not_russian" (a valid number of another country, e.g. +7 7xx Kazakhstan).
    """

    code: str = "invalid_phone"

    def __init__(self, reason: PhoneErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason: PhoneErrorReason = reason


def normalize_phone(raw: str) -> str:
    """Any common way of writing a Russian number -> E.164 ("+79161234567"); raises PhoneError."""
    if not isinstance(raw, str):
        raise PhoneError("malformed", "not a phone number")
    raw = raw.strip()
    if not raw or len(raw) > _MAX_RAW_LENGTH or not _ALLOWED_CHARS.issuperset(raw):
        raise PhoneError("malformed", "not a phone number")
    return _normalize_checked(raw)


@lru_cache(maxsize=_CACHE_SIZE)
def _normalize_checked(raw: str) -> str:
    # Cached on the raw text: batches repeat numbers. Only successes are cached (errors raise).
    if len(raw) == 12 and raw.startswith("+7") and raw[2:].isdigit():
        national = raw[2:]  # already E.164 (what most callers send): nothing to strip
    else:
        match = _CLEAN_FORM.fullmatch(raw.translate(_DROP_SEPARATORS))
        national = match[1] if match is not None else ""
    if national and _is_valid_russian_nsn(national):
        return "+7" + national
    return _normalize_slow(raw)


def _is_valid_russian_nsn(national_number: str) -> bool:
    """What `is_valid_number` and `region_code_for_number(...) == "RU"` answer for +7 and these digits,
    from phonenumbers' own RU metadata, compiled once into one pattern per length (see `_ru_rules`): a
    CSV job checks a million distinct numbers, and phonenumbers' generic path costs ~40 us each where
    this costs well under one."""
    pattern = _ru_rules().get(len(national_number))
    return pattern is not None and pattern.match(national_number) is not None


@lru_cache(maxsize=1)
def _ru_rules() -> dict[int, re.Pattern[str]]:
    """RU's leading digits, general pattern and number-type patterns, as phonenumbers applies them
    (`_region_code_for_number_from_list`, `_number_type_helper`, `_is_number_matching_desc`): a number
    is Russian when RU's leading digits match its start (RU comes first among +7's regions), and valid
    when it matches the general description and any type's (length listed, pattern full match). Per
    length, one pattern holds all three: a lookahead for the leading digits, one for the general
    description, and the types' alternatives, each anchored at the end."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(DEFAULT_REGION)
    assert metadata is not None

    def rule(desc: object) -> tuple[frozenset[int], str] | None:
        pattern = getattr(desc, "national_number_pattern", None)
        if not pattern:
            return None
        return frozenset(getattr(desc, "possible_length", ()) or ()), pattern

    general = rule(metadata.general_desc)
    assert general is not None
    kinds = ("mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
             "pager", "uan", "voicemail")  # fmt: skip
    types = [r for r in (rule(getattr(metadata, kind, None)) for kind in kinds) if r is not None]
    lead = f"(?=(?:{metadata.leading_digits}))" if metadata.leading_digits else ""
    lengths = set(general[0]).union(*(t[0] for t in types))
    compiled: dict[int, re.Pattern[str]] = {}
    for length in sorted(lengths):
        if general[0] and length not in general[0]:
            continue
        allowed = [p for ls, p in types if not ls or length in ls]
        if allowed:
            alternatives = "|".join(f"(?:{p})" for p in allowed)
            compiled[length] = re.compile(f"{lead}(?=(?:{general[1]})\\Z)(?:{alternatives})\\Z")
    return compiled


def _normalize_slow(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except NumberParseException as exc:
        raise PhoneError("malformed", "not a phone number") from exc
    if number.extension or not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid", "not a valid phone number")
    region = phonenumbers.region_code_for_number(number)
    if region != DEFAULT_REGION:
        raise PhoneError("not_russian", f"not a Russian number (region {region})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=_CACHE_SIZE)
def is_mobile(e164: str) -> bool:
    """Whether phonenumbers classes the number as mobile. False for a number it does not know.

    Takes E.164 (what normalize_phone returns); anything else raises PhoneError. Cached: the rules ask
    about the same recipients over and over.
    """
    return phonenumbers.number_type(_parse_e164(e164)) in _MOBILE_TYPES


@lru_cache(maxsize=_CACHE_SIZE)
def number_timezone(e164: str) -> str | None:
    """The number's IANA zone when phonenumbers knows exactly one, else None.

    Russian mobiles are not tied to a region, so phonenumbers lists every Russian zone for them: None.
    Geographic numbers usually have one (+7 4232 ... is Asia/Vladivostok). Takes E.164 only, like
    is_mobile, and is cached likewise (a lookup costs ~6 us).
    """
    zones = pn_timezone.time_zones_for_number(_parse_e164(e164))
    if len(zones) == 1 and zones[0] != _UNKNOWN_ZONE:
        return zones[0]
    return None


@lru_cache(maxsize=1)
def russian_zones() -> tuple[str, ...]:
    """Every IANA zone of Russia, from the tz database's own country table (the tzdata package), so a
    zone added there is known here without a release of ours."""
    table = resources.files("tzdata.zoneinfo").joinpath("zone1970.tab").read_text(encoding="utf-8")
    zones = []
    for line in table.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        countries, _, name = line.split("\t")[:3]
        if "RU" in countries.split(","):
            zones.append(name)
    return tuple(sorted(zones))


@lru_cache(maxsize=_CACHE_SIZE)
def number_timezones(e164: str) -> tuple[str, ...]:
    """Every zone the number may be in: its one zone when phonenumbers knows it; for a Russian number
    that it does not tie to one (a mobile), every Russian zone (phonenumbers' list for +7 mobiles mixes
    in Kazakhstan's and misses Kaliningrad); else what phonenumbers lists. Empty when nothing is known."""
    number = _parse_e164(e164)
    zones = tuple(z for z in pn_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    if len(zones) == 1:
        return zones
    if phonenumbers.region_code_for_number(number) == "RU":
        return russian_zones()
    return zones


def _parse_e164(e164: str) -> PhoneNumber:
    # Takes E.164 only (what normalize_phone stores): raw input here is a caller's bug, not a guess to make.
    if _E164.fullmatch(e164) is None:
        raise PhoneError("malformed", f"not an E.164 number: {e164!r}")
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException as exc:
        raise PhoneError("malformed", f"not an E.164 number: {e164!r}") from exc
