"""W3C trace context over gRPC metadata, on the OpenTelemetry API alone.

The client needs this and nothing of the SDK: an application that traces
brings its own provider, and one that does not pays for no span at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME: Final = "eventwire"

_PROPAGATOR: Final = TraceContextTextMapPropagator()


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
