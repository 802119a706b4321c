"""eventwire's OTLP span encoder writes what the SDK's encoder builds."""

from __future__ import annotations

import asyncio
import os

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from eventwire.observability.otlp import OTLPSpanExporter, encode_spans
from tests.observability.conftest import Collector


def recorded(provider: TracerProvider, exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    tracer = provider.get_tracer("eventwire", "1.2.3", schema_url="https://example.com/s")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    with tracer.start_as_current_span(
        "analytics.AnalyticsService/TrackEvent",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.method": "TrackEvent"},
    ) as server:
        server.set_attribute("rpc.grpc.status_code", 13)
        server.set_status(Status(StatusCode.ERROR, "INTERNAL"))
    with tracer.start_as_current_span(
        "eventwire.ingest.batch",
        links=[Link(server.get_span_context()), Link(remote, {"why": "retry", "n": 2})],
        attributes={
            "eventwire.requests": 2,
            "negative": -5,
            "big": 2**62,
            "ratio": 0.25,
            "flag": True,
            "off": False,
            "strings": ("a", "b"),
            "ints": [1, -2],
            "floats": (1.5,),
            "bools": [True, False],
            "empty": "",
            "unicode": "événement ✓",
        },
    ) as batch:
        batch.add_event("eventwire.store.commit", {"eventwire.rows": 3})
        batch.add_event("bare")
        batch.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT):
            pass
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        tracer.start_span("kind", kind=kind).end()
    other = provider.get_tracer("other")
    other.start_span("from another scope").end()
    return exporter.get_finished_spans()


@pytest.fixture
def spans() -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "eventwire", "host.cpus": 2}, "https://r/1"),
        span_limits=SpanLimits(max_attributes=10, max_events=1, max_links=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return recorded(provider, exporter)


def test_the_same_request_as_the_sdk_encoder(spans: tuple[ReadableSpan, ...]) -> None:
    # The limits dropped attributes, events and links: their counts are encoded too.
    assert any(s.dropped_attributes and s.dropped_events and s.dropped_links for s in spans)
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert ours == sdk_encode(spans)
    assert ours != sdk_encode(spans[:-1])  # the comparison does see a difference


def test_spans_of_several_providers_keep_their_resources() -> None:
    batches: list[ReadableSpan] = []
    for name in ("a", "b"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        batches += recorded(provider, exporter)
    ours = ExportTraceServiceRequest.FromString(encode_spans(batches))
    assert ours == sdk_encode(batches)
    assert len(ours.resource_spans) == 2


def test_an_unencodable_attribute_is_skipped_like_the_sdk_does() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("s", attributes={"ok": 1})
    span.end()
    (finished,) = exporter.get_finished_spans()
    # The SDK's own attribute checks keep such values out of a span; a
    # hand-built ReadableSpan can still carry one.
    odd = ReadableSpan(
        name="s",
        context=finished.context,
        resource=finished.resource,
        attributes={"ok": 1, "odd": {1, 2}},  # type: ignore[dict-item]
        start_time=1,
        end_time=2,
    )
    decoded = ExportTraceServiceRequest.FromString(encode_spans([odd]))
    (encoded,) = decoded.resource_spans[0].scope_spans[0].spans
    assert [kv.key for kv in encoded.attributes] == ["ok"]


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")


@pytest.mark.usefixtures("otlp_env")
def test_the_exporter_reads_the_standard_variables(spans: tuple[ReadableSpan, ...]) -> None:
    exporter = OTLPSpanExporter()
    try:
        assert exporter._endpoint == "127.0.0.1:1"  # the SDK's own parsing of the variable
        assert exporter._timeout == 0.5
        request = ExportTraceServiceRequest.FromString(exporter._translate_data(spans))
        assert request == sdk_encode(spans)
    finally:
        exporter.shutdown()


async def test_the_exporter_delivers_to_a_real_receiver(
    spans: tuple[ReadableSpan, ...],
    collector: tuple[Collector, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true")
    exporter = OTLPSpanExporter()
    try:
        first = await asyncio.to_thread(exporter.export, spans)
        # The SDK rebuilds its channel and client after a transient error: the
        # rebuilt client must still send the encoded bytes.
        exporter._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        again = await asyncio.to_thread(exporter.export, spans[:1])
    finally:
        exporter.shutdown()
    assert (first, again) == (SpanExportResult.SUCCESS, SpanExportResult.SUCCESS)
    names = sorted(name for _, _, name in receiver.spans)
    assert names == sorted([s.name for s in spans] + [spans[0].name])
