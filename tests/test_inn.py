import pytest

from smsqueue.rules.inn import is_valid_inn


def _shift_digits(ascii_digits: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) for c in ascii_digits)


@pytest.mark.parametrize(
    "inn",
    [
        "7707083893",  # Sberbank
        "7736050003",  # Gazprom
        "500100732259",  # an individual's number often used as an example
    ],
)
def test_valid_inns(inn: str) -> None:
    assert is_valid_inn(inn)


@pytest.mark.parametrize(
    "inn",
    [
        "7707083894",  # last digit off by one
        "7707083839",  # two digits swapped
        "500100732258",  # second check digit wrong
        "500100732269",  # first check digit wrong (second one recomputed would differ too)
        "1234567890",
        "123456789012",
    ],
)
def test_wrong_checksums_are_refused(inn: str) -> None:
    assert not is_valid_inn(inn)


@pytest.mark.parametrize(
    "inn",
    ["", "770708389", "77070838930", "5001007322590", "77070838931"],
)
def test_wrong_lengths_are_refused(inn: str) -> None:
    assert not is_valid_inn(inn)


@pytest.mark.parametrize(
    "inn",
    [
        " 7707083893",
        "7707083893 ",
        "77070-83893",
        "77070838a3",
        "+707083893",
        _shift_digits("7707083893", 0xFF10),  # fullwidth digits pass str.isdigit()
        _shift_digits("7707083893", 0x0660),  # Arabic-Indic digits too
    ],
)
def test_non_ascii_digits_are_refused(inn: str) -> None:
    assert not is_valid_inn(inn)


def test_all_zeros_passes_the_checksum_but_is_refused() -> None:
    assert not is_valid_inn("0000000000")
    assert not is_valid_inn("000000000000")


def test_non_strings_are_refused() -> None:
    assert not is_valid_inn(7707083893)  # type: ignore[arg-type]
    assert not is_valid_inn(None)  # type: ignore[arg-type]
