"""The string-typing vocabulary: exactly which wire strings spell each type."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventwire.ingest.plan.wire import (
    INT64_MAX,
    INT64_MIN,
    MAX_NUMBER_CHARS,
    UNDECODABLE,
    decode,
    decode_boolean,
    decode_integer,
    decode_number,
    describe_type,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("7", 7),
        ("-7", -7),
        ("-0", 0),
        ("123456789012345678", 123456789012345678),
        (str(INT64_MAX), INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
    ],
)
def test_integers(text: str, value: int) -> None:
    assert decode_integer(text) == value
    assert type(decode_integer(text)) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "+1",
        "007",
        "-01",
        "00",
        "1.0",
        "1e3",
        " 1",
        "1 ",
        "1_000",
        "٣",
        "²",
        str(INT64_MAX + 1),
        str(INT64_MIN - 1),
        "9" * 5000,
        "0x10",
        "true",
    ],
)
def test_not_integers(text: str) -> None:
    assert decode_integer(text) is UNDECODABLE


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-0.5", -0.5),
        ("1e-3", 0.001),
        ("1E+3", 1000.0),
        ("19.99", 19.99),
        ("0.0", 0.0),
        (str(INT64_MAX + 1), INT64_MAX + 1),
    ],
)
def test_numbers(text: str, value: float) -> None:
    assert decode_number(text) == value


def test_integral_numbers_stay_exact() -> None:
    assert decode_number("9007199254740993") == 9007199254740993  # 2**53 + 1: not a double


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".5",
        "1.",
        "01.5",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        "1e999",
        "-1e999",
        "1e",
        "0x1",
        "+1",
        " 1",
        "1_0",
        "1" * (MAX_NUMBER_CHARS + 1),
        "\u0661",  # ARABIC-INDIC DIGIT ONE
    ],
)
def test_not_numbers(text: str) -> None:
    assert decode_number(text) is UNDECODABLE


def test_booleans_are_lower_case_true_and_false_only() -> None:
    assert decode_boolean("true") is True
    assert decode_boolean("false") is False
    for text in ("True", "FALSE", "1", "0", "yes", "", " true"):
        assert decode_boolean(text) is UNDECODABLE


def test_strings_are_taken_as_they_are() -> None:
    assert decode("string", " 1 ") == " 1 "
    assert describe_type("integer").startswith("a decimal integer")


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_every_int64_round_trips(value: int) -> None:
    assert decode_integer(str(value)) == value
    assert decode_number(str(value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_as_json_and_repr(value: float) -> None:
    # json.dumps is what most senders write; repr is what the generated module sends.
    assert decode_number(json.dumps(value)) == value
    assert decode_number(repr(value)) == value


@given(st.text(max_size=30))
def test_decoders_agree_with_pythons_parsers_where_they_accept(text: str) -> None:
    integer, number = decode_integer(text), decode_number(text)
    if integer is not UNDECODABLE:
        assert integer == int(text)
        assert number == integer
    if number is not UNDECODABLE:
        assert number == json.loads(text)
