"""The validator is a pure function: boundaries are checked exactly, without a server."""

from __future__ import annotations

import pytest

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    MIN_TIMESTAMP_MS,
    Limits,
    validate_alert,
    validate_event,
)

NOW = 1_800_000_000_000


def fields_of(req: analytics_pb2.TrackEventRequest, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    return [v.field for v in validate_event(req, NOW, limits)]


def test_a_valid_event_has_no_violations() -> None:
    req = analytics_pb2.TrackEventRequest(
        event_name="e" * 256,
        user_id="u" * 256,
        timestamp=NOW,
        properties={f"k{i}": "v" * 100 for i in range(255)},
        event_id="~" * 128,
    )
    assert validate_event(req, NOW) == []


@pytest.mark.parametrize(
    ("timestamp", "ok"),
    [
        (0, True),
        (MIN_TIMESTAMP_MS, True),
        (MIN_TIMESTAMP_MS - 1, False),
        (NOW + 86_400_000, True),
        (NOW + 86_400_001, False),
    ],
)
def test_timestamp_window_edges(timestamp: int, ok: bool) -> None:
    req = analytics_pb2.TrackEventRequest(event_name="e", timestamp=timestamp)
    assert (fields_of(req) == []) is ok


def test_exactly_the_size_limit_is_accepted_and_one_byte_more_is_not() -> None:
    limits = Limits(max_event_bytes=100)
    req = analytics_pb2.TrackEventRequest(event_name="e", properties={"k": ""})
    req.properties["k"] = "v" * (100 - req.ByteSize())
    assert req.ByteSize() == 100
    assert fields_of(req, limits) == []
    req.properties["k"] += "v"
    assert fields_of(req, limits) == ["request"]


def test_violations_are_capped_to_bound_the_error_size() -> None:
    req = analytics_pb2.TrackEventRequest(
        event_name="", properties={f"k{i}": "v" * 10 for i in range(50)}
    )
    assert len(validate_event(req, NOW, Limits(max_value_chars=5, max_violations=7))) == 7


def test_prefix_names_the_position_in_a_stream() -> None:
    req = analytics_pb2.TrackEventRequest(event_name="")
    assert [v.field for v in validate_event(req, NOW, prefix="stream[4].")] == [
        "stream[4].event_name"
    ]


def test_alert_requires_device_and_type() -> None:
    violations = validate_alert(telemetry_pb2.AlertRequest(), NOW)
    assert [v.field for v in violations] == ["device_id", "alert_type"]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_properties"):
        Limits(max_properties=0)


def test_property_values_may_hold_newlines_and_tabs() -> None:
    req = analytics_pb2.TrackEventRequest(event_name="e", properties={"note": "a\nb\tc"})
    assert validate_event(req, NOW) == []
