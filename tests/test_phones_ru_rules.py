"""The compiled RU rules of phones._is_valid_russian_nsn answer as phonenumbers does, on every leading
part of the numbering plan (each 5-digit prefix with a random rest, the finer 9300... mobile ranges)."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumber

from smsqueue.phones import _is_valid_russian_nsn, normalize_phone


def by_phonenumbers(nsn: str) -> bool:
    number = PhoneNumber(country_code=7, national_number=int(nsn))
    return phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == "RU"


def test_every_five_digit_prefix_and_the_fine_mobile_ranges_agree_with_phonenumbers():
    rng = random.Random(7)
    samples = [f"{p:05d}{rng.randrange(100_000):05d}" for p in range(100_000)]
    samples += [f"9300{p:03d}{rng.randrange(1000):03d}" for p in range(1000)]
    wrong = [n for n in samples if _is_valid_russian_nsn(n) != by_phonenumbers(n)]
    assert wrong == []
    valid = sum(map(_is_valid_russian_nsn, samples))
    assert 0 < valid < len(samples)  # both answers occur: the check can fail


def test_clean_forms_still_normalise_and_kazakh_numbers_are_refused():
    assert normalize_phone("8 (916) 123-45-67") == "+79161234567"
    assert normalize_phone("+74951234567") == "+74951234567"
    assert not _is_valid_russian_nsn("7012345678")  # +7 70x: Kazakhstan
