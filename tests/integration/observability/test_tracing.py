"""Traces: one trace from the caller through the RPC, the pipeline and the commit."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

import eventwire.client as ec
from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.observability.tracing import inject
from eventwire.testing import running_server
from eventwire.testing._process import ServerProcess
from tests.conftest import refuse_inserts
from tests.support.observability import Collector


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


async def test_span_tree_from_caller_to_commit(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    caller = provider.get_tracer("test")
    async with (
        running_server(traces=provider, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        with caller.start_as_current_span("caller", kind=SpanKind.CLIENT) as root:
            await stub.TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="traced"), metadata=inject()
            )
    spans = exporter.get_finished_spans()
    rpc = by_name(spans, "analytics.AnalyticsService/TrackEvent")
    ingest = by_name(spans, "eventwire.ingest.batch")
    trace_id = root.get_span_context().trace_id
    assert {rpc.context.trace_id, ingest.context.trace_id} == {trace_id}
    assert rpc.parent is not None
    assert rpc.parent.span_id == root.get_span_context().span_id
    assert rpc.kind == SpanKind.SERVER
    assert rpc.attributes is not None
    assert (rpc.attributes["rpc.system"], rpc.attributes["rpc.method"]) == ("grpc", "TrackEvent")
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    assert ingest.parent is not None
    assert ingest.parent.span_id == rpc.context.span_id
    assert [link.context.span_id for link in ingest.links] == [rpc.context.span_id]
    assert ingest.attributes is not None
    assert (ingest.attributes["eventwire.requests"], ingest.attributes["eventwire.rows"]) == (1, 1)
    # The pipeline span runs from the request's arrival in the ingest queue until
    # its batch is durable; an event, not a child span, marks the transaction.
    assert [(e.name, (e.attributes or {}).get("eventwire.rows")) for e in ingest.events] == [
        ("commit", 1)
    ]
    for span in (rpc, ingest):
        assert span.start_time is not None
        assert span.end_time is not None
    assert rpc.start_time <= ingest.start_time <= ingest.events[0].timestamp  # type: ignore[operator]
    assert ingest.end_time <= rpc.end_time  # type: ignore[operator]
    assert len(spans) == 3  # caller, RPC, pipeline: one span per call and one per commit


async def test_a_failed_commit_marks_the_pipeline_span(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    db = tmp_path / "e.db"
    async with (
        running_server(traces=provider, store=f"sqlite:///{db}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        refuse_inserts(db)
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"))
    spans = exporter.get_finished_spans()
    ingest = by_name(spans, "eventwire.ingest.batch")
    assert ingest.status.status_code == StatusCode.ERROR
    assert [event.name for event in ingest.events] == ["commit", "exception"]
    assert not [s for s in spans if s.name == "eventwire.store.commit"]


async def test_a_group_commit_links_every_request_it_carries(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with (
        running_server(traces=provider, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await asyncio.gather(
            *(stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="g")) for _ in range(40))
        )
    spans = exporter.get_finished_spans()
    rpcs = {s.context.span_id for s in spans if s.name.endswith("/TrackEvent")}
    batches = [s for s in spans if s.name == "eventwire.ingest.batch"]
    linked = [link.context.span_id for s in batches for link in s.links]
    assert len(rpcs) == 40
    assert sorted(linked) == sorted(rpcs)  # every request's span is linked exactly once
    assert len(batches) < 40  # ... by group commits that carry several requests


async def test_server_errors_mark_the_span_and_client_errors_do_not(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with (
        running_server(traces=provider, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name=""))
    rpc = by_name(exporter.get_finished_spans(), "analytics.AnalyticsService/TrackEvent")
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rpc.status.status_code == StatusCode.UNSET


async def test_one_trace_across_processes_over_otlp(
    tmp_path: Path,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    collector: tuple[Collector, int],
) -> None:
    receiver, port = collector
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    proc = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'e.db'}", "--trace-exporter", "otlp", env=env
    ).start()
    try:
        caller = provider.get_tracer("test")
        async with ec.AnalyticsClient(proc.address, timeout=5, tracer_provider=provider) as client:
            with caller.start_as_current_span("caller") as root:
                await client.track_event("far", "u1")
        proc.terminate()  # the drain flushes the batched spans
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
    names = {name for tid, _, name in receiver.spans if tid == trace_id}
    assert {"analytics.AnalyticsService/TrackEvent", "eventwire.ingest.batch"} <= names
    # The server's RPC span hangs under the client's attempt span, across processes.
    (rpc_parent,) = [
        p for _, p, n in receiver.spans if n == "analytics.AnalyticsService/TrackEvent"
    ]
    (attempt,) = [
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.CLIENT and s.name.endswith("/TrackEvent")
    ]
    assert attempt.context.trace_id == root.get_span_context().trace_id
    assert rpc_parent == attempt.context.span_id.to_bytes(8, "big")


async def test_head_sampling_traces_a_share_of_calls_and_every_sampled_caller(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    sampled.add_span_processor(SimpleSpanProcessor(exporter))
    caller = provider.get_tracer("test")
    async with (
        running_server(traces=sampled, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await asyncio.gather(
            *(stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="h")) for _ in range(80))
        )
        roots = len(exporter.get_finished_spans())
        # A caller that samples its trace is traced whatever the server's root rate.
        for _ in range(5):
            with caller.start_as_current_span("caller"):
                await stub.TrackEvent(
                    analytics_pb2.TrackEventRequest(event_name="c"), metadata=inject()
                )
    spans = exporter.get_finished_spans()
    rpcs = [s for s in spans if s.name.endswith("/TrackEvent")]
    batches = [s for s in spans if s.name == "eventwire.ingest.batch"]
    # 40 expected of the 80 roots; the bounds are ~6 standard deviations wide.
    assert 12 < len([s for s in rpcs if s.parent is None]) < 68
    assert roots > 0
    assert len([s for s in rpcs if s.parent is not None]) == 5
    linked = sorted(link.context.span_id for s in batches for link in s.links)
    assert linked == sorted(s.context.span_id for s in rpcs)  # only sampled calls, each once
