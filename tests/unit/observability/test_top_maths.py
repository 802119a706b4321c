"""eventwire top's arithmetic: rates from two scrapes, quantiles from buckets, sparklines."""

from __future__ import annotations

import math

import pytest

from eventwire.observability.metrics import quantile
from eventwire.runtime.top import Scrape, diff, sparkline


def test_quantile_interpolates_within_the_bucket() -> None:
    buckets = [(0.01, 10.0), (0.1, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.01 + (0.1 - 0.01) * (50 - 10) / 80)
    assert quantile(buckets, 0.99) == pytest.approx(0.1 + (1.0 - 0.1) * (99 - 90) / 10)
    assert math.isnan(quantile([(1.0, 0.0), (math.inf, 0.0)], 0.5))


def test_diff_turns_two_scrapes_into_rates_and_totals() -> None:
    labels = (("grpc_method", "TrackEvent"),)
    before = Scrape(10.0, {("eventwire_events_stored_total", ()): 100.0})
    after = Scrape(
        12.0,
        {
            ("eventwire_events_stored_total", ()): 300.0,
            ("grpc_server_started_total", labels): 50.0,
            ("grpc_server_handled_total", (*labels, ("grpc_code", "UNAVAILABLE"))): 3.0,
            ("eventwire_ingest_queue_rows", ()): 7.0,
            ("eventwire_store_up", ()): 1.0,
        },
    )
    view = diff(before, after)
    assert view.events_per_s == 100.0
    assert view.events_total == 300
    assert view.methods["TrackEvent"].rate == 25.0
    assert view.errors == {"UNAVAILABLE": 3}
    assert (view.queue_rows, view.store_up, view.draining) == (7, True, False)


def test_sparkline_scales_to_the_peak() -> None:
    assert sparkline([0, 5, 10]) == "▁▄█"
    assert sparkline([0, 0]) == "▁▁"


def test_destinations_show_state_rate_lag_and_breaker() -> None:
    js = (("destination", "js"),)
    before = Scrape(0.0, {("eventwire_destination_delivered_total", js): 1000.0})
    after = Scrape(
        2.0,
        {
            ("eventwire_destination_delivered_total", js): 5000.0,
            ("eventwire_destination_retried_total", js): 3.0,
            ("eventwire_destination_dead_lettered_total", js): 1.0,
            ("eventwire_destination_lag_rows", js): 42.0,
            ("eventwire_destination_lag_seconds", js): 1.5,
            ("eventwire_destination_breaker_state", js): 2.0,
            ("eventwire_destination_state", (*js, ("state", "relaying"))): 0.0,
            ("eventwire_destination_state", (*js, ("state", "retrying"))): 1.0,
        },
    )
    shown = diff(before, after).destinations["js"]
    assert (shown.state, shown.delivered_per_s, shown.delivered) == ("retrying", 2000.0, 5000)
    assert (shown.retried, shown.dead_lettered, shown.lag_rows) == (3, 1, 42)
    assert (shown.lag_seconds, shown.breaker) == (1.5, "open")
    assert diff(before, before).destinations == {}
