"""How a wire string is read as the value its plan declares: the string-typing vocabulary.

``properties`` and ``attributes`` values are strings on the wire. A plan
declares each key with an ordinary JSON Schema ``type``; before validation the
string is decoded as that type, and the schema then checks the decoded value,
so ``minimum``, ``enum`` and ``multipleOf`` mean what they mean in any JSON
Schema:

========  =====================================================================
type      the wire string must be
========  =====================================================================
string    anything (the default when ``type`` is left out)
integer   a decimal integer in the signed 64-bit range: an optional ``-``, then
          ``0`` or digits without a leading zero (``42``, ``-7``; not ``+1``,
          ``007``, ``1.0``, ``1e3``, `` 1``)
number    a JSON number (``3``, ``-0.5``, ``1e-3``; not ``NaN``, ``inf``,
          ``.5``, ``1.``), finite
boolean   ``true`` or ``false``, lower case
========  =====================================================================

A string that does not decode is a ``type`` violation and the value is checked
no further. Timestamps are strings with ``format: date-time`` (RFC 3339 with a
``T`` and an offset: ``2026-12-07T13:00:00Z``), checked by the library.

Decoding is plain string tests, and for numbers one fixed regular expression
without nested quantifiers on at most :data:`MAX_NUMBER_CHARS` characters, so
its cost is bounded whatever the input (ingest validation caps every value at
8,192 characters anyway).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from eventwire.ingest.plan.model import WireType

__all__ = ["DECODERS", "MAX_NUMBER_CHARS", "UNDECODABLE", "decode", "describe_type"]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_NUMBER_CHARS: Final = 64
"""A number written in more characters than this is refused (no float needs more)."""


class _Undecodable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDECODABLE"


UNDECODABLE: Final = _Undecodable()
"""What a decoder returns for a string that does not spell its type."""

# JSON's number grammar. Python's ``re`` backtracks, but this pattern has no nested
# quantifier and its input is capped at MAX_NUMBER_CHARS, so a match is bounded work.
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_MAX_SAFE_DIGITS: Final = 18
"""Up to 18 digits an integer is in the 64-bit range whatever they are."""


def decode_integer(text: str) -> int | _Undecodable:
    # The common case first, in as few steps as C can take them: str.isdigit is
    # true of other scripts' digits too, hence isascii.
    if text.isdigit() and text.isascii():
        if len(text) <= _MAX_SAFE_DIGITS and (text[0] != "0" or len(text) == 1):
            return int(text)
    elif not (text[:1] == "-" and text[1:].isdigit() and text.isascii()):
        return UNDECODABLE
    body = text.removeprefix("-")
    if len(body) > 19 or (body[0] == "0" and len(body) > 1):
        return UNDECODABLE
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else UNDECODABLE


def decode_number(text: str) -> int | float | _Undecodable:
    """JSON's number grammar: ``-? int frac? exp?``; integral spellings stay exact ints."""
    if len(text) > MAX_NUMBER_CHARS or _JSON_NUMBER.fullmatch(text) is None:
        return UNDECODABLE
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)
    value = float(text)
    return value if value - value == 0 else UNDECODABLE  # finite: inf - inf is nan


def decode_boolean(text: str) -> bool | _Undecodable:
    if text == "true":
        return True
    if text == "false":
        return False
    return UNDECODABLE


DECODERS: Final[dict[WireType, Callable[[str], object]]] = {
    "integer": decode_integer,
    "number": decode_number,
    "boolean": decode_boolean,
}
"""Decoders of the non-string types (a string is used as it is)."""


def decode(wire_type: WireType, text: str) -> object:
    decoder = DECODERS.get(wire_type)
    return text if decoder is None else decoder(text)


_SPELLINGS: Final[dict[WireType, str]] = {
    "string": "a string",
    "integer": 'a decimal integer in the signed 64-bit range, like "42" or "-7"',
    "number": 'a JSON number, like "3", "-0.5" or "1e-3"',
    "boolean": '"true" or "false"',
}


def describe_type(wire_type: WireType) -> str:
    return _SPELLINGS[wire_type]
