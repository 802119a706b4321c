"""The validator is a pure function: boundaries are checked exactly, without a server."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    MIN_TIMESTAMP_MS,
    Limits,
    invisible_char,
    latest_timestamp_ms,
    name_pattern,
    timestamp_ms,
    timestamp_ranges,
    validate_alert,
    validate_count,
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


DAY = 86_400_000


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        (1_800_000_000, 1_800_000_000_000),  # seconds: Go's time.Now().Unix()
        (1_800_000_000_123, 1_800_000_000_123),
        (1_800_000_000_123_456, 1_800_000_000_123),  # microseconds, floored
        (1_800_000_000_123_456_789, 1_800_000_000_123),  # nanoseconds: time.Now().UnixNano()
        (946_684_800, MIN_TIMESTAMP_MS),
        (-5, -5000),  # negative: read as seconds, refused as before 2000
    ],
)
def test_every_unit_is_normalised_to_milliseconds(raw: int, ms: int) -> None:
    assert timestamp_ms(raw) == ms


def test_the_latest_timestamp_moves_in_whole_hours() -> None:
    hour = 3_600_000
    assert latest_timestamp_ms(NOW, DAY) == NOW + DAY  # NOW is on the hour
    assert latest_timestamp_ms(NOW + 1, DAY) == NOW + DAY + hour
    assert latest_timestamp_ms(NOW + hour, DAY) == NOW + DAY + hour


@pytest.mark.parametrize("unit", ["seconds", "milliseconds", "microseconds", "nanoseconds"])
def test_each_unit_is_accepted_exactly_within_its_documented_range(unit: str) -> None:
    (low, high) = next((r.low, r.high) for r in timestamp_ranges(NOW, DAY) if r.unit == unit)
    for value, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
        event = analytics_pb2.TrackEventRequest(event_name="e", timestamp=value)
        alert = telemetry_pb2.AlertRequest(device_id="d", alert_type="t", timestamp=value)
        assert (validate_event(event, NOW) == []) is ok, (unit, value)
        assert (validate_alert(alert, NOW) == []) is ok, (unit, value)


def test_a_refused_timestamp_says_how_it_was_read() -> None:
    req = analytics_pb2.TrackEventRequest(event_name="e", timestamp=(NOW + 2 * DAY) // 1000)
    (violation,) = validate_event(req, NOW)
    assert violation.field == "timestamp"
    assert "as seconds too far ahead" in violation.description
    assert str(NOW + DAY) in violation.description


def test_count_bounds_are_timestamps_and_an_empty_range_is_no_error() -> None:
    assert validate_count(analytics_pb2.CountEventsRequest(start=1_800_000_000, end=5)) == []
    (violation,) = validate_count(analytics_pb2.CountEventsRequest(end=-1))
    assert violation.field == "end"


@pytest.mark.parametrize(
    "name",
    [
        "signup",
        "név ✓ 123",
        "ユーザー登録",
        "party 🎉",
        "👩\u200d💻",  # an emoji ZWJ sequence
        "👨\u200d👩\u200d👧",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with a zero-width non-joiner
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # flag of Scotland
        "inner  spaces",
        "\u00a0non-breaking\u3000ideographic",
        "private \ue000 use",
    ],
)
def test_ordinary_text_is_a_valid_name(name: str) -> None:
    req = analytics_pb2.TrackEventRequest(event_name=name, user_id=name, properties={name: "v"})
    assert validate_event(req, NOW) == []
    alert = telemetry_pb2.AlertRequest(device_id=name, alert_type=name[:128])
    assert validate_alert(alert, NOW) == []


@pytest.mark.parametrize(
    ("name", "index", "code"),
    [
        ("a\u200bb", 1, "U+200B"),  # Cf
        ("a\x85", 1, "U+0085"),  # Cc
        ("\x00a", 0, "U+0000"),
        ("ab\u2028", 2, "U+2028"),  # Zl
        ("a\u2029", 1, "U+2029"),  # Zp
        ("\ufeffa", 0, "U+FEFF"),
        ("a\u200d", 1, "U+200D"),  # a joiner with nothing after it
        ("a\u200d\u200db", 1, "U+200D"),  # a joiner before a joiner
        ("🏴\U000e0067x", 1, "U+E0067"),  # a tag sequence without its CANCEL TAG
    ],
)
def test_invisible_characters_are_named_with_their_position(
    name: str, index: int, code: str
) -> None:
    req = analytics_pb2.TrackEventRequest(event_name=name)
    (violation,) = validate_event(req, NOW)
    assert violation.field == "event_name"
    assert code in violation.description
    assert f"found at index {index}" in violation.description


_CHARS = st.sampled_from(
    [
        *("a", " ", "é", "😀", "🏴", "\U000e0067", "\U000e007f", "\u200c", "\u200d", "\u200b"),
        *("\n", "\x85", "\u2028", "\u00a0", "\ufeff", "\U000e0001"),
    ]
)


# No deadline: the first example builds the pattern from a scan of all of Unicode
# (cached after), which takes longer than Hypothesis' 200 ms on a busy machine.
@settings(deadline=None)
@given(st.lists(_CHARS, max_size=8).map("".join))
def test_the_documented_pattern_states_the_validators_rule(name: str) -> None:
    assert (re.fullmatch(name_pattern(), name) is not None) == (invisible_char(name) is None)
