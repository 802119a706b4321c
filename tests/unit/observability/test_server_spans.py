"""A door's server spans: none at all for an unsampled call, one ReadableSpan for a sampled
root call, the SDK's span when a caller or a processor needs it."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from eventwire.observability.server_spans import ServerSpans, linked_span
from eventwire.observability.tracing import HeadSampling

BASE = {"rpc.system": "grpc", "rpc.method": "TrackEvent"}


@contextmanager
def otel_calls() -> Iterator[Counter[str]]:
    """Every Python function of OpenTelemetry called meanwhile, by qualified name."""
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _: Any) -> None:
        code = frame.f_code
        if event == "call" and "/opentelemetry/" in code.co_filename:
            calls[code.co_qualname] += 1

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def _spans(
    sampler: Sampler, processor: Callable[[InMemorySpanExporter], SpanProcessor] | None = None
) -> tuple[ServerSpans, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor((processor or SimpleSpanProcessor)(exporter))
    tracer = provider.get_tracer("t")
    return ServerSpans(tracer, HeadSampling(tracer), "svc/TrackEvent", BASE), exporter


def test_an_unsampled_call_creates_no_span_and_sets_no_attribute() -> None:
    spans, exporter = _spans(ParentBased(TraceIdRatioBased(0.0)))
    with otel_calls() as calls:
        started = [spans.start(None) for _ in range(200)]
    assert started == [None] * 200
    assert calls == Counter()  # not one OpenTelemetry function ran: no span, id, attribute
    assert exporter.get_finished_spans() == ()


def test_a_sampled_root_call_is_one_readable_span_with_its_attributes() -> None:
    spans, exporter = _spans(ParentBased(ALWAYS_ON))
    ok = spans.ending({"rpc.grpc.status_code": 0})
    with otel_calls() as calls:
        started = spans.start(None)
        assert started is not None
        current = trace.get_current_span().get_span_context()
        spans.end(started, ok)
    assert current == started.context  # current while the call runs: logs and links see it
    assert trace.get_current_span() is trace.INVALID_SPAN  # and no longer after
    # The SDK's span object (its lock, bounded attributes, on_start) is never made.
    assert calls["Span.__init__"] == 0
    assert calls["BoundedAttributes.__init__"] == 0
    assert calls["ReadableSpan.__init__"] == 1
    (span,) = exporter.get_finished_spans()
    assert span.name == "svc/TrackEvent"
    assert span.kind == SpanKind.SERVER
    assert span.parent is None
    assert span.context is not None
    assert span.context.trace_flags.sampled
    assert span.context.trace_id != 0
    assert span.context.span_id != 0
    assert dict(span.attributes or {}) == {**BASE, "rpc.grpc.status_code": 0}
    assert span.status.status_code == StatusCode.UNSET
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= span.end_time
    # What the console exporter and the leak checks read.
    assert json.loads(span.to_json())["attributes"]["rpc.grpc.status_code"] == 0


def test_a_server_error_marks_the_span_on_both_paths() -> None:
    spans, exporter = _spans(ParentBased(ALWAYS_ON))
    failed = spans.ending({"rpc.grpc.status_code": 13}, "INTERNAL")
    remote = SpanContext(0xAB, 0xCD, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    for parent in (None, trace.set_span_in_context(trace.NonRecordingSpan(remote))):
        started = spans.start(parent)
        assert started is not None
        spans.end(started, failed)
    root, child = exporter.get_finished_spans()
    for span in (root, child):
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "INTERNAL"
        assert (span.attributes or {})["rpc.grpc.status_code"] == 13
    assert root.parent is None
    # A caller's traceparent: the SDK's own span, a child of the caller's.
    assert child.parent == remote
    assert child.context is not None
    assert child.context.trace_id == 0xAB


def test_ids_differ_from_call_to_call() -> None:
    spans, exporter = _spans(ParentBased(ALWAYS_ON))
    ok = spans.ending({"rpc.grpc.status_code": 0})
    for _ in range(100):
        started = spans.start(None)
        assert started is not None
        spans.end(started, ok)
    contexts = [s.context for s in exporter.get_finished_spans() if s.context is not None]
    assert len({c.trace_id for c in contexts}) == len({c.span_id for c in contexts}) == 100


class Starts(SpanProcessor):
    """A processor that wants every span's start, as some do (e.g. to stamp attributes)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.started: list[Span] = []
        self.exporter = exporter

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.exporter.export([span])


def test_a_processor_that_wants_on_start_gets_the_sdks_span() -> None:
    processors: list[Starts] = []

    def starts(exporter: InMemorySpanExporter) -> Starts:
        processors.append(Starts(exporter))
        return processors[0]

    spans, exporter = _spans(ParentBased(ALWAYS_ON), starts)
    started = spans.start(None)
    assert started is not None
    spans.end(started, spans.ending({"rpc.grpc.status_code": 0}))
    assert len(processors[0].started) == 1
    assert len(exporter.get_finished_spans()) == 1


def test_head_sampling_still_samples_its_share_on_the_light_path() -> None:
    spans, exporter = _spans(ParentBased(TraceIdRatioBased(0.25)))
    ok = spans.ending({"rpc.grpc.status_code": 0})
    sampled = 0
    for _ in range(4000):
        started = spans.start(None)
        if started is not None:
            sampled += 1
            spans.end(started, ok)
    # 1,000 expected; the bounds are ~10 standard deviations wide.
    assert 750 < sampled < 1250
    assert len(exporter.get_finished_spans()) == sampled


def _batch(sampler: Sampler, processor: Callable[[InMemorySpanExporter], SpanProcessor]) -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(processor(exporter))
    tracer = provider.get_tracer("t")
    calls = [tracer.start_span(f"rpc{i}") for i in range(3)]
    contexts = [c.get_span_context() for c in calls]
    span = linked_span(
        tracer,
        "batch",
        parent=contexts[0],
        links=contexts,
        attributes={"eventwire.requests": 3},
        start_time=1_000,
    )
    span.add_event("commit", {"eventwire.rows": 3})
    try:
        int("refused")
    except ValueError as exc:
        span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, "ValueError"))
    span.end()
    (ended,) = [s for s in exporter.get_finished_spans() if s.name == "batch"]
    return ended, contexts


def test_a_linked_span_is_the_same_span_with_or_without_the_sdks_object() -> None:
    made = [
        _batch(ParentBased(ALWAYS_ON), SimpleSpanProcessor),  # the light path
        _batch(ParentBased(ALWAYS_ON), Starts),  # a processor with on_start: the SDK's path
    ]
    for span, contexts in made:
        assert span.parent == contexts[0]
        assert span.context.trace_id == contexts[0].trace_id
        assert span.context.span_id not in {c.span_id for c in contexts}
        assert [link.context for link in span.links] == contexts
        assert dict(span.attributes) == {"eventwire.requests": 3}
        assert span.start_time == 1_000
        commit, failure = span.events
        assert (commit.name, dict(commit.attributes)) == ("commit", {"eventwire.rows": 3})
        assert failure.name == "exception"
        assert failure.attributes["exception.type"] == "ValueError"
        assert "refused" in failure.attributes["exception.message"]
        assert "refused" in failure.attributes["exception.stacktrace"]
        assert (span.status.status_code, span.status.description) == (
            StatusCode.ERROR,
            "ValueError",
        )
