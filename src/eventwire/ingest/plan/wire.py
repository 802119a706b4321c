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

Decoding is plain string tests, no regular expression engine, and every input
is already bounded (:data:`MAX_NUMBER_CHARS`; ingest validation caps values
at 8,192 characters).
"""

from __future__ import annotations

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

_DIGITS: Final = frozenset("0123456789")


def _is_digits(text: str) -> bool:
    return bool(text) and all(c in _DIGITS for c in text)


def _unsigned_integer(text: str) -> bool:
    return _is_digits(text) and (len(text) == 1 or text[0] != "0")


def decode_integer(text: str) -> int | _Undecodable:
    body = text[1:] if text[:1] == "-" else text
    if len(body) > 19 or not _unsigned_integer(body):
        return UNDECODABLE
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else UNDECODABLE


def decode_number(text: str) -> int | float | _Undecodable:
    """JSON's number grammar: ``-? int frac? exp?``; integral spellings stay exact ints."""
    if len(text) > MAX_NUMBER_CHARS:
        return UNDECODABLE
    body = text[1:] if text[:1] == "-" else text
    mantissa, e, exponent = body.replace("E", "e").partition("e")
    if e and not _is_digits(exponent[1:] if exponent[:1] in "+-" else exponent):
        return UNDECODABLE
    whole, dot, fraction = mantissa.partition(".")
    if not _unsigned_integer(whole) or (dot and not _is_digits(fraction)):
        return UNDECODABLE
    if not dot and not e:
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
