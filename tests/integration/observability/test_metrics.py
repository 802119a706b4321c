"""Scraping /metrics after a known workload gives exact counts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing import running_server


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_a_known_workload_exactly(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.metrics_port}") as http,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        for i in range(3):
            await analytics.TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="e", event_id=f"m{i}")
            )
        await analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e", event_id="m0"))
        with pytest.raises(grpc.aio.AioRpcError):
            await analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name=""))
        await analytics.StreamEvents(
            iter([analytics_pb2.TrackEventRequest(event_name="s") for _ in range(5)])
        )
        await telemetry.ReportAlert(telemetry_pb2.AlertRequest(device_id="d", alert_type="t"))
        await asyncio.sleep(0)

        r = await http.get("/metrics")
        assert r.status_code == 200
        m = samples(r.text)

    unary = {
        "grpc_service": "analytics.AnalyticsService",
        "grpc_method": "TrackEvent",
        "grpc_type": "unary",
    }
    assert value(m, "grpc_server_started_total", **unary) == 5
    assert value(m, "grpc_server_handled_total", **unary, grpc_code="OK") == 4
    assert value(m, "grpc_server_handled_total", **unary, grpc_code="INVALID_ARGUMENT") == 1
    assert value(m, "grpc_server_handling_seconds_count", **unary) == 5
    stream = {
        "grpc_service": "analytics.AnalyticsService",
        "grpc_method": "StreamEvents",
        "grpc_type": "client_stream",
    }
    assert value(m, "grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert value(m, "eventwire_events_stored_total") == 3 + 5
    assert value(m, "eventwire_events_duplicate_total") == 1
    assert value(m, "eventwire_events_rejected_total") == 1
    assert value(m, "eventwire_alerts_stored_total") == 1
    assert value(m, "eventwire_commit_rows_sum") == 3 + 1 + 5 + 1
    assert value(m, "eventwire_commits_total", result="ok") == value(
        m, "eventwire_commit_rows_count"
    )
    assert value(m, "eventwire_ingest_queue_rows") == 0
    assert value(m, "eventwire_rpcs_in_flight", grpc_method="TrackEvent") == 0
    assert value(m, "eventwire_store_up") == 1
    assert value(m, "eventwire_draining") == 0
    # Health probes are not counted with the API's RPCs.
    assert not any(
        name == "grpc_server_started_total" and ("grpc_service", "grpc.health.v1.Health") in labels
        for name, labels in m
    )


async def test_metrics_listener_can_be_switched_off(tmp_path: Path) -> None:
    async with running_server(store=f"sqlite:///{tmp_path / 'e.db'}", metrics_address="") as srv:
        assert srv.metrics_port == 0


async def test_process_and_python_collectors_describe_this_process(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.metrics_port}") as http,
    ):
        m = samples((await http.get("/metrics")).text)
    statm = await asyncio.to_thread(Path("/proc/self/statm").read_text)
    rss = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # The server runs in this process: its RSS is ours, give or take the scrape.
    assert 0.5 * rss < value(m, "process_resident_memory_bytes") < 2 * rss
    assert value(m, "process_open_fds") > 0
    assert value(m, "process_cpu_seconds_total") > 0
    assert value(m, "process_max_fds") > 0
    assert value(m, "python_gc_collections_total", generation="0") > 0
    version = {labels for name, labels in m if name == "python_info"}
    assert len(version) == 1
