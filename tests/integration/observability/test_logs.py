"""Log lines written while serving a request name the request and its trace."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.observability import logs
from eventwire.observability.tracing import inject, tracer_provider
from eventwire.testing import running_server
from tests.conftest import refuse_inserts


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    yield stream
    root = logging.getLogger("eventwire")
    root.handlers.clear()
    root.propagate = True
    root.setLevel(logging.NOTSET)


async def test_error_lines_carry_request_and_trace_ids(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    provider = tracer_provider("none", processor=SimpleSpanProcessor(InMemorySpanExporter()))
    assert provider is not None
    db = tmp_path / "e.db"
    async with (
        running_server(traces=provider, store=f"sqlite:///{db}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        refuse_inserts(db)
        with (
            provider.get_tracer("test").start_as_current_span("caller") as root,
            pytest.raises(grpc.aio.AioRpcError),
        ):
            await analytics_pb2_grpc.AnalyticsServiceStub(ch).TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="e"),
                metadata=(("x-request-id", "req-77"), *inject()),
            )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (error,) = [line for line in lines if line["msg"].startswith("unexpected error")]
    assert error["request_id"] == "req-77"
    assert error["trace_id"] == format(root.get_span_context().trace_id, "032x")
    assert error["level"] == "error"
    assert "exc" in error
    # Lines outside any request carry neither.
    (serving,) = [line for line in lines if line["msg"] == "serving"]
    assert "request_id" not in serving
    assert "trace_id" not in serving
