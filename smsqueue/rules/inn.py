"""INN, the Russian taxpayer number: 10 digits for an organisation, 12 for an individual.

The check digits follow the Federal Tax Service's algorithm: each is a weighted sum of the digits
before it, modulo 11, then modulo 10 (a remainder of 10 gives 0).
"""

from __future__ import annotations

_WEIGHTS_10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_WEIGHTS_12_FIRST = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_WEIGHTS_12_SECOND = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def is_valid_inn(value: str) -> bool:
    """Exactly 10 or 12 ASCII digits with correct check digits. No spaces are stripped.

    A number whose first two digits (the region of the tax office that issued it) are 00 is refused
    too: no office has that code, and 0000000000 would otherwise pass the checksum.
    """
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        return False
    if value.startswith("00"):
        return False
    digits = [int(c) for c in value]
    if len(digits) == 10:
        return digits[9] == _check_digit(digits, _WEIGHTS_10)
    if len(digits) == 12:
        first_ok = digits[10] == _check_digit(digits, _WEIGHTS_12_FIRST)
        return first_ok and digits[11] == _check_digit(digits, _WEIGHTS_12_SECOND)
    return False


def _check_digit(digits: list[int], weights: tuple[int, ...]) -> int:
    # The weights cover the digits before the check digit; zip stops there.
    return sum(d * w for d, w in zip(digits, weights, strict=False)) % 11 % 10
