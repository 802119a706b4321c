"""The batch fast path must accept exactly what the validator accepts, and build the same row."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventwire.api import analytics_pb2
from eventwire.ingest.rows import fast_row as _fast_row
from eventwire.ingest.rows import fast_rows as _fast_rows
from eventwire.ingest.rows import row as _row
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    MIN_TIMESTAMP_MS,
    Limits,
    latest_timestamp_ms,
    timestamp_ms,
    validate_event,
)
from eventwire.store.base import EventRow
from tests.support.bad_inputs import CASES, NOW_MS

TRICKY: list[dict[str, object]] = [
    {"event_name": "signup"},
    {"event_name": "signup", "user_id": "u-1", "event_id": "0190-abc", "timestamp": NOW_MS},
    {"event_name": "név ✓", "user_id": "ユーザー", "properties": {"ключ": "значение 😀"}},
    {"event_name": "a\u200bb"},  # invisible: the fast path doubts it, the validator refuses it
    # Joiners in ordinary text: an emoji ZWJ sequence, a Persian word.
    {"event_name": "👩\u200d💻", "user_id": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"},
    {"event_name": "x", "user_id": "\u00a0nbsp\u3000"},  # not printable, but visible spaces
    {"event_name": "x", "timestamp": NOW_MS // 1000},  # seconds (Go's time.Now().Unix())
    {"event_name": "x", "timestamp": NOW_MS * 1000 + 999},  # microseconds
    {"event_name": "x", "timestamp": NOW_MS * 1_000_000 + 999_999},  # nanoseconds
    {"event_name": "x", "timestamp": 946_684_799},  # seconds, before 2000
    {"event_name": "x", "properties": {"k": "line\nbreak\ttab"}},
    {"event_name": "x", "properties": {"k": ""}},
    {"event_name": "x", "properties": {"": "v"}},
    {"event_name": "x", "properties": {"k\x01": "v"}},
    {"event_name": "x", "properties": {"k": "a\x00b"}},
    {"event_name": "x", "properties": {"k" * 256: "v"}},
    {"event_name": "x", "properties": {"k" * 257: "v"}},
    {"event_name": "x", "properties": {"a" * 200: "v", "b" * 200: "w"}},
    {"event_name": "x", "properties": {"k": "v" * 8192}},
    {"event_name": "x", "properties": {"k": "v" * 8193}},
    {"event_name": "x", "properties": {"a": "v" * 5000, "b": "w" * 5000}},
    {"event_name": "x", "properties": {f"k{i}": "v" for i in range(255)}},
    {"event_name": "x", "properties": {f"k{i}": "v" for i in range(256)}},
    {"event_name": "x", "properties": {f"k{i}": "v" * 8000 for i in range(5)}},
    {"event_name": "x", "properties": {f"k{i}": "é" * 2000 for i in range(4)}},
    {"event_name": "x", "event_id": "has space"},
    {"event_name": "x", "event_id": "ünïcode"},
    {"event_name": "x", "event_id": "i" * 128},
    {"event_name": "x", "event_id": "i" * 129},
    {"event_name": " padded "},
    {"event_name": "x", "user_id": " "},
    {"event_name": "x", "timestamp": latest_timestamp_ms(NOW_MS, DEFAULT_LIMITS.max_future_ms)},
    {"event_name": "x", "timestamp": latest_timestamp_ms(NOW_MS, DEFAULT_LIMITS.max_future_ms) + 1},
    *(case.request for case in CASES if case.method == "TrackEvent"),
]


@pytest.mark.parametrize("fields", TRICKY, ids=range(len(TRICKY)))
@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, Limits(max_event_bytes=1024)])
def test_fast_path_agrees_with_the_validator(fields: dict[str, object], limits: Limits) -> None:
    req = json_format.ParseDict(fields, analytics_pb2.TrackEventRequest())
    values = _fast_row(req, "t", NOW_MS, limits)
    valid = not validate_event(req, NOW_MS, limits)
    if values is None:
        return  # the full validator decides; nothing to compare
    row = EventRow(*values)
    assert valid, "fast path accepted an event the validator rejects"
    assert row.tenant == "t"
    assert row.event_name == req.event_name
    assert row.user_id == req.user_id
    assert row.timestamp == (timestamp_ms(req.timestamp) if req.timestamp else NOW_MS)
    assert row.received_at == NOW_MS
    assert orjson.loads(row.properties) == dict(req.properties)
    if req.event_id:
        assert row.event_id == req.event_id


def test_fast_path_takes_the_common_event() -> None:
    req = analytics_pb2.TrackEventRequest(
        event_name="page_view", user_id="u-1", event_id="e-1", properties={"plan": "pro"}
    )
    values = _fast_row(req, "", NOW_MS, DEFAULT_LIMITS)
    # A plain tuple (store.base.EventValues), field for field what the validated
    # path builds as an EventRow.
    assert type(values) is tuple
    assert values == _row(req, "", NOW_MS, {"plan": "pro"})
    assert EventRow(*values).properties == '{"plan":"pro"}'


# Mostly plausible text, sometimes text that crosses a rule (spaces, controls,
# NUL, non-ASCII, wide characters), so that many events pass the fast path.
_TRICKY = st.text(
    alphabet=st.sampled_from(
        ["a", " ", "\t", "\n", "\x00", "\x7f", "é", "😀", "\u3000", "~", "\u200b", "\u200d"]
    ),
    max_size=10,
)
_PLAIN = st.text(alphabet="abcXYZ019-_.é😀", min_size=1, max_size=7)
_TEXT = st.one_of(_PLAIN, _PLAIN, _PLAIN, _TRICKY)
_OPTIONAL = st.one_of(st.just(""), _TEXT)
_SMALL = Limits(
    max_name_chars=6,
    max_alert_type_chars=6,
    max_id_chars=6,
    max_value_chars=8,
    max_properties=3,
    max_event_bytes=80,
)
_LATEST = latest_timestamp_ms(NOW_MS, _SMALL.max_future_ms)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_TEXT,
    user=_OPTIONAL,
    event_id=st.one_of(st.just(""), st.text(alphabet="abc019-~", max_size=8), _TRICKY),
    timestamp=st.sampled_from(
        [
            *(0, -1, MIN_TIMESTAMP_MS - 1, MIN_TIMESTAMP_MS, NOW_MS),
            *(NOW_MS // 1000, NOW_MS * 1000, NOW_MS * 1_000_000, MIN_TIMESTAMP_MS // 1000 - 1),
            _LATEST,
            _LATEST + 1,
            _LATEST // 1000,
            _LATEST // 1000 + 1,
            _LATEST * 1_000_000 + 999_999,
            (_LATEST + 1) * 1_000_000,
        ]
    ),
    properties=st.dictionaries(_TEXT, _OPTIONAL, max_size=4),
)
def test_fast_path_never_accepts_what_the_validator_refuses(
    name: str, user: str, event_id: str, timestamp: int, properties: dict[str, str]
) -> None:
    req = analytics_pb2.TrackEventRequest(
        event_name=name, user_id=user, event_id=event_id, timestamp=timestamp, properties=properties
    )
    values = _fast_row(req, "t", NOW_MS, _SMALL)
    if values is None:
        return
    row = EventRow(*values)
    assert validate_event(req, NOW_MS, _SMALL) == []
    expected_ms = timestamp_ms(timestamp) if timestamp else NOW_MS
    assert (row.event_name, row.user_id, row.timestamp) == (name, user, expected_ms)
    assert orjson.loads(row.properties) == properties


_EVENT = st.builds(
    analytics_pb2.TrackEventRequest,
    event_name=_TEXT,
    user_id=_OPTIONAL,
    event_id=st.one_of(st.just(""), st.text(alphabet="abc019-~", max_size=8), _TRICKY),
    timestamp=st.sampled_from([0, NOW_MS, NOW_MS // 1000, _LATEST, _LATEST + 1, -1]),
    properties=st.dictionaries(_TEXT, _OPTIONAL, max_size=4),
)


def _without_generated_ids(
    reqs: list[analytics_pb2.TrackEventRequest], rows: list[tuple[object, ...]]
) -> list[tuple[object, ...]]:
    # An event without an id gets a fresh UUIDv7 on each path.
    pairs = zip(reqs, rows, strict=True)
    return [row if req.event_id else (*row[:1], "", *row[2:]) for req, row in pairs]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(_EVENT, min_size=1, max_size=4))
def test_the_batch_path_accepts_a_batch_only_when_every_event_is_certainly_valid(
    reqs: list[analytics_pb2.TrackEventRequest],
) -> None:
    rows = _fast_rows(reqs, "t", NOW_MS, _SMALL, _LATEST)
    if rows is None:
        return  # event by event decides; nothing to compare
    singles = [_fast_row(req, "t", NOW_MS, _SMALL, _LATEST) for req in reqs]
    assert None not in singles, "the batch path accepted an event the single path doubts"
    assert all(validate_event(req, NOW_MS, _SMALL) == [] for req in reqs)
    assert all(type(row) is tuple for row in rows)
    assert _without_generated_ids(reqs, rows) == _without_generated_ids(reqs, singles)  # type: ignore[arg-type]


def test_the_batch_path_takes_a_plain_batch_and_leaves_a_doubtful_one() -> None:
    plain = [
        analytics_pb2.TrackEventRequest(
            event_name="page_view", user_id=f"u-{i}", event_id=f"e-{i}", properties={"p": "v"}
        )
        for i in range(3)
    ]
    latest = latest_timestamp_ms(NOW_MS, DEFAULT_LIMITS.max_future_ms)
    rows = _fast_rows(plain, "t", NOW_MS, DEFAULT_LIMITS, latest)
    assert rows is not None
    assert [EventRow(*row).event_id for row in rows] == ["e-0", "e-1", "e-2"]
    for doubtful in ({"user_id": " "}, {"timestamp": NOW_MS // 1000}, {"properties": {"": "v"}}):
        batch = [*plain, analytics_pb2.TrackEventRequest(event_name="x", **doubtful)]
        assert _fast_rows(batch, "t", NOW_MS, DEFAULT_LIMITS, latest) is None, doubtful
