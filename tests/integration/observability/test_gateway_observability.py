"""The HTTP front door is traced and counted like the gRPC one."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from eventwire.observability.tracing import inject, tracer_provider
from eventwire.testing import running_server
from tests.integration.observability.test_metrics import samples, value


async def test_http_requests_join_the_callers_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider("none", processor=SimpleSpanProcessor(exporter))
    assert provider is not None
    async with (
        running_server(traces=provider, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
    ):
        with provider.get_tracer("test").start_as_current_span("caller") as root:
            r = await http.post("/v1/events", json={"eventName": "web"}, headers=dict(inject()))
        assert r.status_code == 200
    spans = exporter.get_finished_spans()
    (http_span,) = [s for s in spans if s.name == "POST /v1/events"]
    assert http_span.kind == SpanKind.SERVER
    assert http_span.parent is not None
    assert http_span.parent.span_id == root.get_span_context().span_id
    assert http_span.attributes is not None
    assert http_span.attributes["http.response.status_code"] == 200
    (batch,) = [s for s in spans if s.name == "eventwire.ingest.batch"]
    assert batch.context.trace_id == root.get_span_context().trace_id
    assert batch.parent is not None
    assert batch.parent.span_id == http_span.context.span_id


async def test_http_requests_are_counted_by_route_template_and_status(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
    ):
        await http.post("/v1/events", json={"eventName": "a"})
        await http.post("/v1/events", json={"eventName": "b"})
        await http.post("/v1/events", json={"eventName": ""})
        await http.get("/v1/alerts/no-such-id")
        await http.get("/nowhere")
        scraped = samples((await http.get(f"http://127.0.0.1:{srv.metrics_port}/metrics")).text)
    total = "eventwire_http_requests_total"
    assert value(scraped, total, route="/v1/events", code="200") == 2
    assert value(scraped, total, route="/v1/events", code="400") == 1
    assert value(scraped, total, route="/v1/alerts/{tracking_id}", code="404") == 1
    assert value(scraped, total, route="unmatched", code="404") == 1
