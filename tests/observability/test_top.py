"""``eventwire top``: the maths exactly, and the real command against a real server."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.observability.top import Scrape, diff, quantile, sparkline
from eventwire.testing import running_server


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


async def test_top_shows_a_real_servers_figures(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        for i in range(12):
            await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="t", event_id=f"t{i}"))
        await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="t", event_id="t0"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventwire",
            "top",
            "--target",
            f"127.0.0.1:{srv.metrics_port}",
            "--interval",
            "0.2",
            "--iterations",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    screen = out.decode()
    assert "stored 12" in screen
    assert "duplicates 1" in screen
    assert "TrackEvent" in screen
    assert "storage up" in screen
    assert "errors since start: none" in screen


async def test_top_says_when_it_cannot_reach_the_server() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        "top",
        "--target",
        "127.0.0.1:9",
        "--iterations",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 3
    assert "cannot read http://127.0.0.1:9/metrics" in out.decode()
