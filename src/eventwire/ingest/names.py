"""The rule for names: visible text, no character that changes how it is split or shown.

Names (event names, user and device ids, alert types, property keys) may hold
any letter, digit, symbol, emoji or inner space, but no invisible character
that changes how text is split or shown: Unicode categories Cc (controls: NUL,
newline, U+0085 ...), Cf (format: U+200B zero-width space, U+FEFF,
bidirectional overrides ...), Zl and Zp (U+2028, U+2029). Two names that look
identical would otherwise be stored as different names. The same rule is
given as a regular expression (:func:`name_pattern`) for the API document.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Final

INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode categories no name may contain (see the module docstring)."""

_CATEGORY_NAMES: Final = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def describe_char(char: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a character named the way Unicode charts do."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X}"


JOINERS: Final = "\u200c\u200d"
"""ZERO WIDTH NON-JOINER and JOINER: format characters, yet part of ordinary text
(Persian and Indic words, emoji such as 👩‍💻); allowed between two visible characters."""
TAG_BASE: Final = "\U0001f3f4"
TAG_FIRST: Final = "\U000e0020"
TAG_LAST: Final = "\U000e007e"
TAG_END: Final = "\U000e007f"
"""An emoji tag sequence (UTS #51; the flags of England, Scotland, Wales) is the
black flag, tag characters, then CANCEL TAG: allowed as a whole."""


def invisible_char(value: str) -> tuple[int, str] | None:
    """The index and character of the first invisible character of ``value`` that is
    not part of ordinary text (see :data:`JOINERS`, :data:`TAG_BASE`), or None.

    :func:`name_pattern` states the same rule as a regular expression.
    """
    if value.isprintable():  # C: no invisible character is printable; most text stops here
        return None
    index, size = 0, len(value)
    after_visible = False
    while index < size:
        char = value[index]
        if unicodedata.category(char) not in INVISIBLE_CATEGORIES:
            if char == TAG_BASE:
                end = index + 1
                while end < size and TAG_FIRST <= value[end] <= TAG_LAST:
                    end += 1
                if end > index + 1 and end < size and value[end] == TAG_END:
                    index = end
            index += 1
            after_visible = True
            continue
        if (
            char in JOINERS
            and after_visible
            and index + 1 < size
            and unicodedata.category(value[index + 1]) not in INVISIBLE_CATEGORIES
        ):
            index += 1
            after_visible = False
            continue
        return index, char
    return None


@cache
def _category_ranges() -> dict[str, str]:
    """Characters by category group, as regex class ranges (``a-b``): "invisible"
    (:data:`INVISIBLE_CATEGORIES`) and "space" (Zs), from one scan of Unicode.

    Literal characters rather than escapes: ECMA-262, Rust's regex and Python's
    ``re`` read them alike, which they do not for escapes above U+FFFF. Built
    from this interpreter's Unicode tables, the same ones the validator uses.
    """
    groups: dict[str, list[list[int]]] = {"invisible": [], "space": []}
    for code in range(0x110000):
        category = unicodedata.category(chr(code))
        group = (
            "invisible" if category in INVISIBLE_CATEGORIES else "space" if category == "Zs" else ""
        )
        if not group:
            continue
        ranges = groups[group]
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return {
        group: "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
        for group, ranges in groups.items()
    }


def invisible_chars() -> str:
    """Every character of :data:`INVISIBLE_CATEGORIES`, as regex class ranges."""
    return _category_ranges()["invisible"]


def blank_pattern() -> str:
    """A regular expression for the non-empty names ``str.strip()`` empties that
    :func:`name_pattern` allows: spaces (Zs) only."""
    return f"^[{_category_ranges()['space']}]+$"


@cache
def name_pattern() -> str:
    """:func:`invisible_char`'s rule as a regular expression (for the API document):
    visible characters and whole emoji tag sequences, joined by at most one joiner."""
    visible = f"[^{invisible_chars()}]"
    token = f"(?:{TAG_BASE}[{TAG_FIRST}-{TAG_LAST}]+{TAG_END}|{visible})"
    return f"^(?:{token}(?:[{JOINERS}]?{token})*)?$"


def invisible_violation(value: str, what: str = "must") -> str:
    """Why ``value`` is not a valid name (``what`` begins the sentence), or "" if it is."""
    found = invisible_char(value)
    if found is None:
        return ""
    index, char = found
    category = _CATEGORY_NAMES[unicodedata.category(char)]
    return f"{what} not contain {describe_char(char)} ({category}), found at index {index}"
