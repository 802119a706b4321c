"""OpenTelemetry tracing: the provider, and W3C trace context over gRPC metadata.

Tracing is off unless an exporter is chosen; then nothing is created and the
instrumented code paths skip their span work entirely (``tracer is None``).
The OTLP exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables and the
resource the standard ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

EXPORTERS: Final = ("none", "console", "otlp")
TRACER_NAME: Final = "eventwire"

_PROPAGATOR: Final = TraceContextTextMapPropagator()


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
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if processor is not None:
        provider.add_span_processor(processor)
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        # Imported here: a server without tracing never loads grpc's OTLP stubs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class _MetadataGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER: Final = _MetadataGetter()


def extract(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    """The trace context a caller sent in ``traceparent``/``tracestate`` metadata.

    Without a ``traceparent`` that is an empty context (a new trace), and the
    propagator is skipped: there is nothing for it to parse.
    """
    carrier = {k: v for k, v in metadata or () if isinstance(v, str)}
    if "traceparent" not in carrier:
        return otel_context.Context()
    return _PROPAGATOR.extract(carrier, getter=_GETTER)


def inject(ctx: otel_context.Context | None = None) -> list[tuple[str, str]]:
    """``traceparent``/``tracestate`` metadata for the current (or given) span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return list(carrier.items())


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or "" outside any span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""
