"""How many SMS parts a text takes: GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2.

GSM-7 counts septets: a basic-set character is one, an extension-set character is two (ESC + the
character). UCS-2 counts UTF-16 code units: a character outside the BMP (most emoji) is two (a
surrogate pair). A single part holds 160 septets / 70 units; once a text needs more, every part also
carries a concatenation header and holds 153 septets / 67 units.

A two-unit character (escape pair, surrogate pair) is never split across parts: a part that has one
unit of room left ends there and the pair opens the next one. So the count of a multipart text is a
greedy packing, not `ceil(units / 153)`: 152 plain characters then "€" takes 154 septets and two parts
whose split falls before the "€".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["SegmentInfo", "count_segments"]

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet in code order 0x00-0x7F, without 0x1B (ESC, which introduces the
# extension set and is not a character). Ç (0x09) is the capital only: ç is not GSM-7. Δ and Ω are the
# Greek letters (U+0394, U+03A9).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension set: form feed ^ { } \ [ ~ ] | €, each sent as ESC + a code, two septets.
GSM_EXTENSION = "\f^{}\\[~]|€"

_GSM_SINGLE, _GSM_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67

# A regex character class scans in C: finding the first non-GSM character of a 1600-character text
# costs a few microseconds (a Python loop over the characters costs ~100).
_NON_GSM = re.compile("[^" + "".join(re.escape(c) for c in GSM_BASIC + GSM_EXTENSION) + "]")
# ESC is not in the basic set, so in a GSM-7 text it can only be one we put there.
_ESC = "\x1b"
_HIGH_SURROGATES = range(0xD800, 0xDC00)
_LOW_SURROGATES = range(0xDC00, 0xE000)


@dataclass(slots=True)  # not frozen: one per message counted (see message_rows.NewMessage)
class SegmentInfo:
    encoding: Encoding
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) of the text, headers not included


def count_segments(text: str) -> SegmentInfo:
    """The encoding, number of parts and length in units of `text`.

    Empty text is GSM-7, 0 units, 1 segment: an SMS with no text is still one message on the wire,
    and it keeps `segments >= 1` for anything that could be sent (the API refuses empty text anyway).
    Text is counted as given, not normalised: "é" written as e + a combining accent is UCS-2.
    """
    if _NON_GSM.search(text) is None:
        return _count_gsm7(text)
    return _count_ucs2(text)


def _count_gsm7(text: str) -> SegmentInfo:
    # The text as sent, one character per septet: each extension character preceded by ESC.
    septets = text
    for char in GSM_EXTENSION:
        if char in septets:
            septets = septets.replace(char, _ESC + char)
    units = len(septets)
    if units <= _GSM_SINGLE:
        return SegmentInfo("GSM-7", 1, units)
    return SegmentInfo("GSM-7", _pack(units, _GSM_MULTI, lambda i: septets[i] == _ESC), units)


def _count_ucs2(text: str) -> SegmentInfo:
    # "surrogatepass": a lone surrogate (JSON can carry one) counts as one unit instead of failing.
    encoded = text.encode("utf-16-le", "surrogatepass")
    units = len(encoded) // 2
    if units <= _UCS2_SINGLE:
        return SegmentInfo("UCS-2", 1, units)
    code_units = memoryview(encoded).cast("H")

    def opens_pair(i: int) -> bool:
        return code_units[i] in _HIGH_SURROGATES and code_units[i + 1] in _LOW_SURROGATES

    return SegmentInfo("UCS-2", _pack(units, _UCS2_MULTI, opens_pair), units)


def _pack(units: int, capacity: int, opens_pair: Callable[[int], bool]) -> int:
    """Parts of `capacity` units needed, filling each part as far as it goes.

    A part that would end between the two units of a pair (`opens_pair` of its last unit) ends one
    unit early, and the pair opens the next part. One step per part, not per character.
    """
    parts = start = 0
    while start < units:
        end = start + capacity
        if end < units and opens_pair(end - 1):
            end -= 1
        parts, start = parts + 1, end
    return parts
