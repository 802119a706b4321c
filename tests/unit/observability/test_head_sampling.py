"""Head sampling decided before any span work, at the sampler's root rate."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

from eventwire.observability.tracing import HeadSampling, root_rate


def test_root_rate_of_the_standard_samplers() -> None:
    assert root_rate(ParentBased(TraceIdRatioBased(0.1))) == 0.1
    assert root_rate(TraceIdRatioBased(0.25)) == 0.25
    assert root_rate(ParentBased(ALWAYS_ON)) == 1.0
    assert root_rate(ALWAYS_OFF) == 0.0
    assert root_rate(object()) is None  # someone else's sampler: the SDK decides


def _tracer(sampler: Sampler) -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("t"), exporter


def test_a_ratio_samples_its_share_of_roots_once() -> None:
    tracer, exporter = _tracer(ParentBased(TraceIdRatioBased(0.25)))
    sampling = HeadSampling(tracer)
    sampled = 0
    for _ in range(4000):
        parent = sampling.root()
        if parent is None:
            continue
        span = tracer.start_span("rpc", context=parent, kind=SpanKind.SERVER, attributes={"a": 1})
        assert span.is_recording()  # chosen once: the sampler does not draw again
        span.end()
        sampled += 1
    # 1,000 expected; the bounds are ~10 standard deviations wide.
    assert 750 < sampled < 1250
    spans = exporter.get_finished_spans()
    assert len(spans) == sampled
    assert all(s.parent is None and (s.attributes or {}).get("a") == 1 for s in spans)


def test_children_and_other_roots_still_follow_the_tracers_sampler() -> None:
    tracer, exporter = _tracer(ParentBased(TraceIdRatioBased(0.0)))
    sampling = HeadSampling(tracer)
    assert all(sampling.root() is None for _ in range(100))
    # A span started without the head decision (another door) asks the real sampler.
    assert not tracer.start_span("other").is_recording()
    # A sampled caller's child is sampled, whatever the root rate.
    caller, _ = _tracer(ALWAYS_ON)
    with caller.start_as_current_span("caller"):
        child = tracer.start_span("child")
        assert child.is_recording()
        child.end()
    assert [s.name for s in exporter.get_finished_spans()] == ["child"]


def test_all_or_nothing_rates_need_no_draw() -> None:
    on, _ = _tracer(ParentBased(ALWAYS_ON))
    context = HeadSampling(on).root()
    assert context is not None
    assert on.start_span("x", context=context).is_recording()
    off, _ = _tracer(ALWAYS_OFF)
    assert HeadSampling(off).root() is None
