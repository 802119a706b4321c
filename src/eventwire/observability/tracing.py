"""OpenTelemetry tracing on the SDK: the server's tracer provider and its exporters.

Tracing is off unless an exporter is chosen; then nothing is created and the
instrumented code paths skip their span work entirely (``tracer is None``).
Propagation (what the client needs too) lives in
:mod:`eventwire.observability.propagation`, on the OpenTelemetry API alone.
The OTLP exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables and the
resource the standard ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from eventwire.observability.propagation import TRACER_NAME, current_trace_id, extract, inject

__all__ = [
    "EXPORTERS",
    "TRACER_NAME",
    "current_trace_id",
    "extract",
    "inject",
    "resource",
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
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def resource(default_service_name: str = "eventwire") -> Resource:
    """The SDK's resource, named ``default_service_name`` only when the environment names none.

    Configuration is read in :mod:`eventwire.config` alone, with one exception:
    the OpenTelemetry SDK reads its own standard variables (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_*``), so that eventwire
    is configured like every other instrumented service. Attributes passed to
    ``Resource.create`` would override the environment, hence the check first.
    """
    named = SERVICE_NAME in OTELResourceDetector().detect().attributes
    return Resource.create({} if named else {SERVICE_NAME: default_service_name})
