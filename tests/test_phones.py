"""normalize_phone, is_mobile, number_timezone; and the fast path answering exactly as phonenumbers does."""

from __future__ import annotations

import random

import pytest

from smsqueue import phones
from smsqueue.phones import PhoneError, is_mobile, normalize_phone, number_timezone

MOBILE = "+79161234567"


@pytest.mark.parametrize(
    "raw",
    [
        "+79161234567",
        "89161234567",
        "8 (916) 123-45-67",
        "79161234567",
        "9161234567",
        "+7 916 123 45 67",
        "8-916-123-45-67",
        "+7 (916) 123-45-67",
        "+7-916-123-45-67",
        "8.916.123.45.67",
        "  +79161234567\n",
        "8\u00a0916\u00a0123\u201345\u201367",  # no-break spaces and en dashes, as pasted from documents
        "8 10 7 916 123-45-67",  # 810: the Russian international prefix
    ],
)
def test_common_forms_of_a_mobile(raw: str) -> None:
    assert normalize_phone(raw) == MOBILE


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 (495) 123-45-67", "+74951234567"),  # Moscow landline
        ("+7 4232 12-34-56", "+74232123456"),  # Vladivostok landline
        ("8 800 555-35-35", "+78005553535"),  # toll-free: not mobile, still a valid Russian number
        ("88005553535", "+78005553535"),
        ("78005553535", "+78005553535"),
        ("+7 978 123 45 67", "+79781234567"),
    ],
)
def test_other_russian_numbers(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["+77011234567", "87011234567", "+7 701 123 45 67", "7011234567"])
def test_kazakhstan_is_refused(raw: str) -> None:
    with pytest.raises(PhoneError) as err:
        normalize_phone(raw)
    assert err.value.code == "invalid_phone"
    assert err.value.reason == "not_russian"
    assert "KZ" in str(err.value)


@pytest.mark.parametrize("raw", ["+12025550123", "+44 20 7946 0958", "+380 44 123 4567"])
def test_other_countries_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError) as err:
        normalize_phone(raw)
    assert (err.value.code, err.value.reason) == ("invalid_phone", "not_russian")


@pytest.mark.parametrize(
    "raw",
    [
        "8 916 123 45 6",  # too short
        "916123456",
        "+7916123456",
        "+791612345678",  # too long
        "8916123456789",
        "+7 600 123 45 67",  # no such range
        "+7 000 000 00 00",
        "0079161234567",
    ],
)
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError) as err:
        normalize_phone(raw)
    assert err.value.code == "invalid_phone"
    assert err.value.reason in {"invalid", "malformed"}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "abc",
        "8-800-FLOWERS",  # phonenumbers would read letters as keypad digits
        "+7 916 123 45 67 ext. 12",
        "+7 916 123 45 67#12",
        "tel:+79161234567",
        "89161234567".translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"}),  # fullwidth digits
        "+7" + " " * 60 + "9161234567",  # over the length cap
        "1" * 30,
        "+7 916 123 45 67; 89161234568",
    ],
)
def test_malformed_input_is_refused(raw: str) -> None:
    with pytest.raises(PhoneError) as err:
        normalize_phone(raw)
    assert err.value.code == "invalid_phone"


@pytest.mark.parametrize("raw", [None, 79161234567, b"+79161234567"])
def test_non_string_input_is_a_phone_error(raw: object) -> None:
    with pytest.raises(PhoneError):
        normalize_phone(raw)  # type: ignore[arg-type]


def test_phone_error_is_a_value_error() -> None:
    assert issubclass(PhoneError, ValueError)


# --- is_mobile and number_timezone -----------------------------------------------------------------


def test_is_mobile() -> None:
    assert is_mobile(MOBILE)
    assert not is_mobile("+74951234567")
    assert not is_mobile("+78005553535")


def test_a_mobile_has_no_single_zone() -> None:
    assert number_timezone(MOBILE) is None


@pytest.mark.parametrize(
    ("e164", "zone"),
    [("+74232123456", "Asia/Vladivostok"), ("+74951234567", "Europe/Moscow")],
)
def test_a_landline_has_its_zone(e164: str, zone: str) -> None:
    assert number_timezone(e164) == zone


def test_unknown_number_has_no_zone() -> None:
    assert number_timezone("+76001234567") is None
    assert not is_mobile("+76001234567")


@pytest.mark.parametrize("bad", ["89161234567", "79161234567", "+7 916 123 45 67", "", "+0123"])
def test_lookups_take_e164_only(bad: str) -> None:
    with pytest.raises(PhoneError):
        is_mobile(bad)
    with pytest.raises(PhoneError):
        number_timezone(bad)


# --- the fast path gives phonenumbers' own answers ------------------------------------------------

_SEPARATORS = ["", "", " ", "-", "(", ")", ".", "\u00a0", " - ", ") ", "((", "\u2013"]
_PREFIXES = ["+7", "8", "7", "", "+8", "+", "87", "78", "+77", "810", "07", "(8)", "(+7)", "+(7)", "+-7"]


def _outcome(normalize: object, raw: str) -> str | tuple[str, str]:
    try:
        return normalize(raw)  # type: ignore[operator]
    except PhoneError as exc:
        return ("error", exc.reason)


def _random_number(rng: random.Random) -> str:
    digits = rng.choice("3456789") + "".join(rng.choices("0123456789", k=rng.choice([9, 9, 9, 8, 10, 13])))
    groups, i = [], 0
    while i < len(digits):
        size = rng.randint(1, 4)
        groups.append(digits[i : i + size])
        i += size
    body = "".join(group + rng.choice(_SEPARATORS) for group in groups)
    return (rng.choice(_PREFIXES) + rng.choice(_SEPARATORS) + body).strip()


def test_fast_path_agrees_with_a_full_parse() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(5000):
        raw = _random_number(rng)
        fast = _outcome(phones._normalize_checked.__wrapped__, raw)  # uncached: fast path, else full parse
        assert fast == _outcome(phones._normalize_slow, raw), raw
        accepted += isinstance(fast, str)
    assert accepted > 300  # the sample did exercise the accepting side


@pytest.mark.parametrize("first_three", [f"{n:03d}" for n in range(300, 1000, 7)])
def test_fast_path_agrees_across_ranges(first_three: str) -> None:
    for prefix in ("+7", "8", "7", ""):
        raw = prefix + first_three + "1234567"
        assert _outcome(phones._normalize_checked.__wrapped__, raw) == _outcome(phones._normalize_slow, raw)
