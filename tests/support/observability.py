from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventwire.observability.tracing import tracer_provider


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Finished spans, kept in memory for the test to read."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A tracer provider exporting synchronously into ``exporter``."""
    made = tracer_provider("none", processor=SimpleSpanProcessor(exporter))
    assert made is not None
    return made


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver: the spans, and the resource of each export
    that carried any."""

    def __init__(self) -> None:
        self.spans: list[tuple[bytes, bytes, str]] = []
        self.resources: list[dict[str, str]] = []
        self.arrived = asyncio.Event()

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend((s.trace_id, s.parent_span_id, s.name) for s in scope.spans)
            if any(scope.spans for scope in resource.scope_spans):
                self.resources.append(
                    {a.key: a.value.string_value for a in resource.resource.attributes}
                )
        self.arrived.set()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    receiver = Collector()
    # opentelemetry-proto's generated gRPC module is untyped.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield receiver, port
    await server.stop(0)
