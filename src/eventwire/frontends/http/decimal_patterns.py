"""Regular expressions for integer ranges written as decimals.

The OpenAPI document states an int64 field's range for clients that send it as
a string (proto3 JSON allows both); JSON Schema's ``minimum``/``maximum`` only
apply to numbers, so the string form gets a pattern matching exactly the
canonical decimals of the range.
"""

from __future__ import annotations


def decimal_pattern(low: int, high: int) -> str:
    """A regular expression matching exactly the canonical decimals (no sign but a
    leading minus, no leading zero) of the integers ``low`` to ``high``."""
    alternatives: list[str] = []
    if low < 0:
        alternatives += [f"-{a}" for a in _nonnegative(max(1, -high), -low)]
    if high >= 0:
        alternatives += _nonnegative(max(0, low), high)
    return "^(?:" + "|".join(alternatives) + ")$"


def _nonnegative(low: int, high: int) -> list[str]:
    out: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(high, 10**digits - 1)
        if a <= b:
            out += _same_length(str(a), str(b))
    return out


def _same_length(a: str, b: str) -> list[str]:
    """Alternatives matching the digit strings from ``a`` to ``b`` (same length)."""
    if a == b:
        return [a]
    common = 0
    while a[common] == b[common]:
        common += 1
    prefix, a, b = a[:common], a[common:], b[common:]
    rest = len(a) - 1
    tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" if rest == 1 else ""
    if not rest:
        return [f"{prefix}[{a}-{b}]"]
    out: list[str] = []
    first, last = int(a[0]), int(b[0])
    if a[1:] == "0" * rest:
        first -= 1  # a's whole block joins the middle
    else:
        out += [prefix + a[0] + x for x in _same_length(a[1:], "9" * rest)]
    full_last = b[1:] == "9" * rest
    middle_end = last if full_last else last - 1
    if first + 1 <= middle_end:
        digit = str(first + 1) if first + 1 == middle_end else f"[{first + 1}-{middle_end}]"
        out.append(prefix + digit + tail)
    if not full_last:
        out += [prefix + b[0] + x for x in _same_length("0" * rest, b[1:])]
    return out
