"""OpenTelemetry tracing on the SDK: the server's tracer provider and its exporters.

Tracing is off unless an exporter is chosen; then nothing is created and the
instrumented code paths skip their span work entirely (``tracer is None``).
Propagation (what the client needs too) lives in
:mod:`eventwire.observability.propagation`, on the OpenTelemetry API alone.
The OTLP exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables and the
resource the standard ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.util.types import Attributes

from eventwire.observability.propagation import TRACER_NAME, current_trace_id, extract, inject

__all__ = [
    "EXPORTERS",
    "TRACER_NAME",
    "HeadSampling",
    "current_trace_id",
    "extract",
    "inject",
    "resource",
    "span_processor",
    "tracer_provider",
]

EXPORTERS: Final = ("none", "console", "otlp")


def tracer_provider(
    exporter: str, service_name: str = "eventwire", processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """A provider exporting to ``exporter``, or None when tracing is off.

    ``processor`` replaces the exporter (tests pass one with an in-memory exporter).
    """
    if processor is None and exporter == "none":
        return None
    if exporter not in EXPORTERS:
        raise ValueError(f"trace exporter must be one of {EXPORTERS}, got {exporter!r}")
    provider = TracerProvider(resource=resource(service_name))
    if processor is not None:
        provider.add_span_processor(processor)
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        # Imported here: a server without tracing never loads grpc's OTLP stubs.
        from eventwire.observability.otlp_encoding import FastOTLPSpanExporter

        provider.add_span_processor(span_processor(FastOTLPSpanExporter()))
    return provider


def span_processor(exporter: SpanExporter) -> SpanProcessor:
    """The processor that hands the server's spans to ``exporter``, in batches."""
    return BatchSpanProcessor(exporter)


def resource(default_service_name: str = "eventwire") -> Resource:
    """The SDK's resource, named ``default_service_name`` only when the environment names none.

    Configuration is read in :mod:`eventwire.config` alone, with one exception:
    the OpenTelemetry SDK reads its own standard variables (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_*``), so that eventwire
    is configured like every other instrumented service. Attributes passed to
    ``Resource.create`` would override the environment, hence the check first.
    """
    named = SERVICE_NAME in OTELResourceDetector().detect().attributes
    made = Resource.create({} if named else {SERVICE_NAME: default_service_name})
    return _HashedOnce(dict(made.attributes), made.schema_url)


class _HashedOnce(Resource):
    """A resource that hashes once. The OTLP encoder groups every span by its resource
    in a dict, and the SDK's ``Resource.__hash__`` serialises the attributes to JSON
    each time: ~20 % of encoding a server span (bench/notes.md, T1). A resource's
    attributes are immutable, so the hash is too."""

    def __init__(self, attributes: dict[str, Any], schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return other is self or super().__eq__(other)


_DECIDED: Final = otel_context.create_key("eventwire-head-sampled")
_SAMPLED_ROOT: Final = otel_context.set_value(_DECIDED, True, otel_context.Context())
_ROOT: Final = otel_context.Context()


def root_rate(sampler: object) -> float | None:
    """The share of root spans (no parent) ``sampler`` samples, or None when it is not
    one of the SDK's standard samplers (then the SDK decides, span by span)."""
    if isinstance(sampler, ParentBased):
        return root_rate(getattr(sampler, "_root", None))
    if isinstance(sampler, TraceIdRatioBased):
        return float(sampler.rate)
    if isinstance(sampler, StaticSampler):
        return 1.0 if sampler.get_description() == "AlwaysOnSampler" else 0.0
    return None


class _Predecided(Sampler):
    """The tracer's own sampler, except for a root span :class:`HeadSampling` already
    chose: that one is sampled without asking again (which would sample rate² of them)."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(  # noqa: PLR0917 - the SDK's signature
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: object = None,
    ) -> SamplingResult:
        if parent_context is not None and parent_context.get(_DECIDED):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return self._inner.get_description()


class HeadSampling:
    """A root call's sampling decision, made before any span work.

    The SDK decides only inside ``start_span``, after it has drawn a trace id and
    a span id, built a ``SamplingResult`` and a ``NonRecordingSpan``; a server
    sampling 10 % of its calls paid that (plus attaching the span to the
    context) for the other 90 %. Here a call without a ``traceparent`` draws one
    random number against the sampler's root rate and, unsampled, creates
    nothing at all. A sampled one starts its span in a context the tracer's
    sampler (wrapped once, here) recognises as already chosen. Calls that carry
    a ``traceparent``, and samplers other than the SDK's standard ones, take the
    SDK's own path, span by span. Which root calls are sampled is decided by a
    random draw rather than by the trace id's bits: the share is the same, and
    the decision still travels with the trace in its sampled flag.
    """

    def __init__(self, tracer: Tracer) -> None:
        sampler = getattr(tracer, "sampler", None)
        self.rate = root_rate(sampler)
        if self.rate is not None and 0 < self.rate < 1:
            assert isinstance(sampler, Sampler)  # noqa: S101 - root_rate knew it
            # Our own tracer object (the provider makes one per get_tracer): the
            # provider's other tracers keep the plain sampler.
            tracer.sampler = _Predecided(sampler)  # type: ignore[attr-defined]

    def root(self) -> otel_context.Context | None:
        """The context to start a root span in, or None: this call is not sampled."""
        rate = self.rate
        if rate is None or rate >= 1:
            return _ROOT
        if rate <= 0 or random.random() >= rate:  # noqa: S311 - sampling, not secrecy
            return None
        return _SAMPLED_ROOT
