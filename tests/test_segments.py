"""count_segments: exact part counts at every boundary, the alphabet itself, and a slow reference model."""

from __future__ import annotations

import random
import time

import pytest

from smsqueue.segments import GSM_BASIC, GSM_EXTENSION, SegmentInfo, count_segments

CYR = "ж"
EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair in UTF-16


def gsm(n: int) -> str:
    return "a" * n


def cyr(n: int) -> str:
    return CYR * n


# --- the alphabet ----------------------------------------------------------------------------------


def test_basic_set_is_the_127_characters_of_gsm_03_38() -> None:
    assert len(GSM_BASIC) == 127
    assert len(set(GSM_BASIC)) == 127
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà\n\r":
        assert char in GSM_BASIC, repr(char)
    assert set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") <= set(GSM_BASIC)


@pytest.mark.parametrize("char", list(GSM_BASIC))
def test_every_basic_character_is_one_septet(char: str) -> None:
    assert count_segments(char) == SegmentInfo("GSM-7", 1, 1)


@pytest.mark.parametrize("char", list(GSM_EXTENSION))
def test_every_extension_character_is_two_septets(char: str) -> None:
    assert count_segments(char) == SegmentInfo("GSM-7", 1, 2)


def test_form_feed_is_an_extension_character() -> None:
    assert count_segments("a\fb") == SegmentInfo("GSM-7", 1, 4)


@pytest.mark.parametrize(
    "char",
    [
        "ç",  # only the capital Ç is in the basic set
        "`",
        "\t",
        "\x00",
        "\x1b",  # ESC introduces the extension set; it is not a character of its own
        "\u00a0",  # no-break space
        "á",
        "Ё",
        "«",
        "—",
        "\u2206",  # INCREMENT, not the Greek Δ
        "\u2126",  # OHM SIGN, not the Greek Ω
        "e\u0301",  # e + combining acute: counted as given, not normalised to é
    ],
)
def test_characters_outside_gsm_make_the_text_ucs2(char: str) -> None:
    assert count_segments("Hello " + char).encoding == "UCS-2"


def test_capital_c_cedilla_is_gsm() -> None:
    assert count_segments("Ça va").encoding == "GSM-7"


def test_mixed_latin_and_cyrillic_is_ucs2() -> None:
    assert count_segments("Code 1234, код 1234") == SegmentInfo("UCS-2", 1, 19)


def test_empty_text_is_one_gsm_part_of_zero_units() -> None:
    assert count_segments("") == SegmentInfo("GSM-7", 1, 0)


# --- GSM-7 boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1530, 10), (1600, 11)],
)
def test_gsm_plain_boundaries(length: int, segments: int) -> None:
    assert count_segments(gsm(length)) == SegmentInfo("GSM-7", segments, length)


def test_extension_characters_count_two_in_a_single_part() -> None:
    assert count_segments(gsm(158) + "€") == SegmentInfo("GSM-7", 1, 160)
    assert count_segments(gsm(159) + "€") == SegmentInfo("GSM-7", 2, 161)
    assert count_segments("{" * 80) == SegmentInfo("GSM-7", 1, 160)
    assert count_segments("{" * 81) == SegmentInfo("GSM-7", 2, 162)


def test_escape_pair_is_not_split_at_the_end_of_a_part() -> None:
    # 152 + "€" = 154 septets: the pair cannot take the part's last septet, so the part ends at 152
    # and the second part holds 2 + 151 = 153 septets.
    assert count_segments(gsm(152) + "€" + gsm(151)) == SegmentInfo("GSM-7", 2, 305)
    # One more septet no longer fits: a plain division (306 / 153 = 2) would say 2.
    assert count_segments(gsm(152) + "€" + gsm(152)) == SegmentInfo("GSM-7", 3, 306)
    # The same units with the pair wholly inside the first part: 151 + 2 = 153 exactly.
    assert count_segments(gsm(151) + "€" + gsm(153)) == SegmentInfo("GSM-7", 2, 306)


def test_escape_pair_just_after_a_full_part() -> None:
    assert count_segments(gsm(153) + "€" + gsm(151)) == SegmentInfo("GSM-7", 2, 306)
    assert count_segments(gsm(153) + "€" + gsm(152)) == SegmentInfo("GSM-7", 3, 307)


def test_only_extension_characters_fill_parts_of_152() -> None:
    # 153 is odd: each part holds 76 pairs (152 septets) and wastes one.
    assert count_segments("€" * 152) == SegmentInfo("GSM-7", 2, 304)
    assert count_segments("€" * 153) == SegmentInfo("GSM-7", 3, 306)


def test_gsm_1600_characters() -> None:
    assert count_segments(gsm(1600)) == SegmentInfo("GSM-7", 11, 1600)
    assert count_segments("€" * 1600) == SegmentInfo("GSM-7", 22, 3200)


# --- UCS-2 boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (1600, 24)],
)
def test_ucs2_plain_boundaries(length: int, segments: int) -> None:
    assert count_segments(cyr(length)) == SegmentInfo("UCS-2", segments, length)


def test_emoji_counts_two_units() -> None:
    assert count_segments(EMOJI) == SegmentInfo("UCS-2", 1, 2)
    assert count_segments(cyr(68) + EMOJI) == SegmentInfo("UCS-2", 1, 70)
    assert count_segments(cyr(69) + EMOJI) == SegmentInfo("UCS-2", 2, 71)
    assert count_segments(EMOJI * 35) == SegmentInfo("UCS-2", 1, 70)


def test_an_emoji_alone_makes_latin_text_ucs2() -> None:
    assert count_segments("ok " + EMOJI) == SegmentInfo("UCS-2", 1, 5)


def test_surrogate_pair_is_not_split_at_the_end_of_a_part() -> None:
    # The pair would take units 67 and 68: it moves to the second part (2 + 65 = 67).
    assert count_segments(cyr(66) + EMOJI + cyr(65)) == SegmentInfo("UCS-2", 2, 133)
    assert count_segments(cyr(66) + EMOJI + cyr(66)) == SegmentInfo("UCS-2", 3, 134)
    # Wholly inside the first part (units 66-67): 134 units fit two parts exactly.
    assert count_segments(cyr(65) + EMOJI + cyr(67)) == SegmentInfo("UCS-2", 2, 134)


def test_bmp_symbols_count_one_unit() -> None:
    assert count_segments("\u2764" * 70) == SegmentInfo("UCS-2", 1, 70)  # heart, in the BMP


def test_lone_surrogate_is_one_unit_and_does_not_crash() -> None:
    # JSON can carry "\ud83d" alone; it is not a character to send, but counting must not fail.
    assert count_segments("a\ud83d") == SegmentInfo("UCS-2", 1, 2)


def test_ucs2_1600_characters_with_emoji() -> None:
    assert count_segments(EMOJI * 800) == SegmentInfo("UCS-2", 25, 1600)  # 33 pairs (66 units) a part


# --- against a reference model ---------------------------------------------------------------------


def reference_count(text: str) -> SegmentInfo:
    """A slow, obvious model: walk the characters, open a new part when the next one does not fit."""
    gsm_chars = set(GSM_BASIC) | set(GSM_EXTENSION)
    if all(c in gsm_chars for c in text):
        encoding, single, multi = "GSM-7", 160, 153
        costs = [2 if c in GSM_EXTENSION else 1 for c in text]
    else:
        encoding, single, multi = "UCS-2", 70, 67
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    units = sum(costs)
    if units <= single:
        return SegmentInfo(encoding, 1, units)  # type: ignore[arg-type]
    parts, room = 0, 0
    for cost in costs:
        if cost > room:
            parts, room = parts + 1, multi
        room -= cost
    return SegmentInfo(encoding, parts, units)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    pools = ["a", "a€", "a€{", "aж", "ж" + EMOJI, "a" + EMOJI, "€" + EMOJI, "aé£" + GSM_EXTENSION]
    for _ in range(200):
        pool = rng.choice(pools)
        weights = [rng.random() for _ in pool]
        text = "".join(rng.choices(pool, weights, k=rng.randint(0, 1700)))
        assert count_segments(text) == reference_count(text), text


# --- speed -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [gsm(1600), ("a" * 99 + "€") * 16, "€" * 1600, cyr(1600), (cyr(49) + EMOJI) * 32, EMOJI * 800],
    ids=["gsm", "gsm-extension", "all-extension", "cyrillic", "cyrillic-emoji", "all-emoji"],
)
def test_1600_characters_take_well_under_a_millisecond(text: str) -> None:
    # Measured at 5-22 us; the bound is loose so a busy CI machine does not fail it.
    best = min(_time_one_call(text) for _ in range(5))
    assert best < 0.0005


def _time_one_call(text: str, calls: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        count_segments(text)
    return (time.perf_counter() - start) / calls
