"""The gateway's JSON fast path must build exactly what json_format builds, or step aside."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventwire.api import analytics_pb2
from eventwire.frontends.http.messages import _plain_event

# Every name json_format takes for a TrackEventRequest field, a near miss, and
# a field name that does not exist.
KEYS = st.sampled_from(
    [
        "event_name",
        "eventName",
        "user_id",
        "userId",
        "timestamp",
        "properties",
        "event_id",
        "eventId",
        "EventName",
        "unknown",
    ]
)
# Text with everything Python strings can hold, lone surrogates included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SCALARS = st.one_of(
    TEXT,
    st.integers(min_value=-(2**65), max_value=2**65),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.sampled_from(["1700000000000", "-5", "1e3", " 12"]),
)
VALUES = st.one_of(
    SCALARS,
    st.dictionaries(TEXT, SCALARS, max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=3),
    st.lists(SCALARS, max_size=2),
)
EVENTS = st.dictionaries(KEYS, VALUES, max_size=6)
PLAIN = st.fixed_dictionaries(
    {"eventName": TEXT},
    optional={
        "userId": TEXT,
        "eventId": TEXT,
        "timestamp": st.integers(min_value=0, max_value=2**62),
        "properties": st.dictionaries(TEXT, TEXT, max_size=4),
    },
)


def _slow(obj: Any) -> analytics_pb2.TrackEventRequest | None:
    try:
        return json_format.ParseDict(
            obj, analytics_pb2.TrackEventRequest(), ignore_unknown_fields=False
        )
    except (json_format.ParseError, TypeError, ValueError):
        return None


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(EVENTS, PLAIN))
def test_fast_path_builds_what_json_format_builds(obj: dict[str, Any]) -> None:
    fast = _plain_event(obj)
    if fast is not None:
        slow = _slow(obj)
        assert slow is not None, f"fast path accepted what json_format refuses: {obj!r}"
        assert fast == slow


@pytest.mark.parametrize(
    "obj",
    [
        {"eventName": "signup"},
        {"event_name": "signup", "user_id": "u-1", "timestamp": 1_700_000_000_000},
        {"eventName": "név ✓", "properties": {"ключ": "значение 😀", "": ""}},
        {"eventName": "x", "eventId": "0190-abc", "properties": {}},
    ],
)
def test_what_clients_send_takes_the_fast_path(obj: dict[str, Any]) -> None:
    # Parsed from real JSON bytes, as the gateway sees it.
    parsed = orjson.loads(orjson.dumps(obj))
    fast = _plain_event(parsed)
    assert fast is not None
    assert fast == _slow(parsed)


@pytest.mark.parametrize(
    "obj",
    [
        {"eventName": "x", "properties": ""},
        {"eventName": "x", "timestamp": "1700000000000"},
        {"eventName": "x", "timestamp": True},
        {"eventName": "x", "timestamp": 2**63},
        {"eventName": "x", "eventName_": "y"},
        {"eventName": "x", "event_name": "y"},
        {"eventName": "x", "properties": {"k": 1}},
        {"eventName": "x", "properties": None},
        {"eventName": 5},
        ["not", "an", "object"],
    ],
)
def test_anything_unusual_is_left_to_json_format(obj: Any) -> None:
    assert _plain_event(obj) is None
