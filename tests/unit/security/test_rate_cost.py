"""A request's rate-limit cost counts its events and its bytes."""

from __future__ import annotations

import pytest

from eventwire._errors import Overloaded
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.security.limits import BYTES_PER_UNIT, RateLimiter, cost_of


def _biggest_alert() -> telemetry_pb2.AlertRequest:
    return telemetry_pb2.AlertRequest(
        device_id="d",
        alert_type="t",
        message="m" * 4096,
        attributes={f"a{i:02d}": "v" * 1024 for i in range(64)},
    )


def test_a_small_request_costs_one_per_event() -> None:
    assert cost_of(analytics_pb2.TrackEventRequest(event_name="view")) == 1
    assert cost_of(telemetry_pb2.AlertRequest(device_id="d", alert_type="t")) == 1
    batch = analytics_pb2.EventBatch(
        events=[analytics_pb2.TrackEventRequest(event_name="view") for _ in range(7)]
    )
    assert cost_of(batch) == 7
    assert cost_of(analytics_pb2.EventBatch()) == 1


def test_big_requests_cost_one_more_per_unit_of_bytes() -> None:
    alert = _biggest_alert()
    assert cost_of(alert) == 1 + alert.ByteSize() // BYTES_PER_UNIT == 5
    assert cost_of(alert, bytes_per_unit=1024) == 1 + alert.ByteSize() // 1024
    assert cost_of(alert, bytes_per_unit=0) == 1  # counting requests only
    blob = {f"k{j}": "x" * 100_000 for j in range(4)}
    batch = analytics_pb2.EventBatch(
        events=[analytics_pb2.TrackEventRequest(event_name="e", properties=blob) for _ in range(10)]
    )
    assert cost_of(batch) == 10 + batch.ByteSize() // BYTES_PER_UNIT


def test_a_rate_limit_admits_fewer_big_requests_than_small_ones() -> None:
    now = [0.0]
    limiter = RateLimiter(100, clock=lambda: now[0])
    big = cost_of(_biggest_alert())
    assert big > 1
    for _ in range(100 // big):  # the burst of one second, in units
        limiter.charge("acme", big)
    with pytest.raises(Overloaded):
        limiter.charge("acme", big)
