"""Log lines written while serving a request name the request and its trace."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
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
from eventwire.testing._process import ServerProcess
from tests.conftest import refuse_inserts


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # pytest's own
    hooks = sys.excepthook, threading.excepthook
    logs.configure("info", "json", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
    logging.getLogger("eventwire").setLevel(logging.NOTSET)


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


def test_every_line_of_the_process_has_the_one_json_format(tmp_path: Path) -> None:
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'e.db'}") as proc:
        # uvicorn logs a refused WebSocket upgrade itself, on its own logger.
        host, _, port = proc.http_address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\n\r\n"
            )
            sock.recv(4096)
        proc.terminate()
        assert proc.wait() == 0
    lines = proc.logs
    assert any(str(line.get("logger")).startswith("uvicorn") for line in lines), lines
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line), line
