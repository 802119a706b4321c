"""The traced server's resource comes from the OpenTelemetry environment variables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

import eventwire.client as ec
from eventwire.testing._process import ServerProcess


class ResourceCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver keeping each exported resource's attributes."""

    def __init__(self) -> None:
        self.resources: list[dict[str, str]] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for spans in request.resource_spans:
            if any(scope.spans for scope in spans.scope_spans):
                self.resources.append(
                    {a.key: a.value.string_value for a in spans.resource.attributes}
                )
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[ResourceCollector, int]]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    collector = ResourceCollector()
    # opentelemetry-proto's generated gRPC module is untyped.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield collector, port
    await server.stop(0)


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
    tmp_path: Path, receiver: tuple[ResourceCollector, int]
) -> None:
    collector, port = receiver
    await traced_call(
        tmp_path,
        port,
        OTEL_SERVICE_NAME="ingest-eu",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=staging,service.namespace=shop",
    )
    assert collector.resources
    for attributes in collector.resources:
        assert attributes["service.name"] == "ingest-eu"
        assert attributes["deployment.environment"] == "staging"
        assert attributes["service.namespace"] == "shop"


async def test_a_service_name_in_the_resource_attributes_is_kept(
    tmp_path: Path, receiver: tuple[ResourceCollector, int]
) -> None:
    collector, port = receiver
    await traced_call(tmp_path, port, OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes")
    assert collector.resources
    assert {a["service.name"] for a in collector.resources} == {"from-attributes"}


async def test_without_a_name_in_the_environment_the_service_is_eventwire(
    tmp_path: Path, receiver: tuple[ResourceCollector, int]
) -> None:
    collector, port = receiver
    await traced_call(tmp_path, port)
    assert collector.resources
    assert {a["service.name"] for a in collector.resources} == {"eventwire"}
