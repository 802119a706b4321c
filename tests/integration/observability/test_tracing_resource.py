"""The traced server's resource comes from the OpenTelemetry environment variables."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import eventwire.client as ec
from eventwire.testing._process import ServerProcess
from tests.support.observability import Collector


async def traced_call(tmp_path: Path, port: int, **otel: str) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
    }
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **otel,
    }
    proc = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'e.db'}", "--trace-exporter", "otlp", env=env
    ).start()
    try:
        async with ec.AnalyticsClient(proc.address, timeout=5) as client:
            await client.track_event("resourced", "u1")
        proc.terminate()  # the drain flushes the batched spans
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


async def test_spans_carry_the_service_name_and_attributes_from_the_environment(
    tmp_path: Path, collector: tuple[Collector, int]
) -> None:
    receiver, port = collector
    await traced_call(
        tmp_path,
        port,
        OTEL_SERVICE_NAME="ingest-eu",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=staging,service.namespace=shop",
    )
    assert receiver.resources
    for attributes in receiver.resources:
        assert attributes["service.name"] == "ingest-eu"
        assert attributes["deployment.environment"] == "staging"
        assert attributes["service.namespace"] == "shop"


async def test_a_service_name_in_the_resource_attributes_is_kept(
    tmp_path: Path, collector: tuple[Collector, int]
) -> None:
    receiver, port = collector
    await traced_call(tmp_path, port, OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes")
    assert receiver.resources
    assert {a["service.name"] for a in receiver.resources} == {"from-attributes"}


async def test_without_a_name_in_the_environment_the_service_is_eventwire(
    tmp_path: Path, collector: tuple[Collector, int]
) -> None:
    receiver, port = collector
    await traced_call(tmp_path, port)
    assert receiver.resources
    assert {a["service.name"] for a in receiver.resources} == {"eventwire"}
