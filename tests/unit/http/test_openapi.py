"""The API document states the validator's rules exactly: int64 ranges as patterns, and the
timestamp window per unit, boundaries included."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from eventwire.api import analytics_pb2
from eventwire.frontends.http.openapi import INT64_MAX, INT64_MIN, decimal_pattern, openapi_document
from eventwire.ingest.validation import DEFAULT_LIMITS, validate_event

NOW = 1_800_000_000_123
INTS = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)


@given(low=INTS, high=INTS, value=INTS)
def test_a_decimal_pattern_matches_exactly_its_range(low: int, high: int, value: int) -> None:
    low, high = min(low, high), max(low, high)
    pattern = re.compile(decimal_pattern(low, high))
    for candidate in (value, low, high, low - 1, high + 1, low + (high - low) // 3):
        assert (pattern.fullmatch(str(candidate)) is not None) is (low <= candidate <= high)
    assert pattern.fullmatch("0" + str(abs(low))) is None or low == 0 == high  # no padding
    assert pattern.fullmatch("+" + str(abs(high))) is None


def test_the_documented_timestamp_forms_are_what_the_validator_accepts() -> None:
    schema = openapi_document(at_ms=NOW)["components"]["schemas"]["TrackEventRequest"]
    forms = schema["properties"]["timestamp"]["anyOf"]
    ranges = [(f["minimum"], f["maximum"]) for f in forms if f.get("type") == "integer"]
    assert len(ranges) == 4  # seconds, milliseconds, microseconds, nanoseconds
    for low, high in ranges:
        for value, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            req = analytics_pb2.TrackEventRequest(event_name="e", timestamp=value)
            assert (validate_event(req, NOW, DEFAULT_LIMITS) == []) is ok, value
            strings = [f for f in forms if f.get("type") == "string" and "pattern" in f]
            documented = any(re.fullmatch(f["pattern"], str(value)) for f in strings)
            assert documented is ok, value
