"""A door's server span per call: head-sampled, and made without the SDK's span object
when nothing could tell the difference.

Tracing every call cost ~30 % of a unary call's CPU (bench/notes.md, T1), most of it
the SDK's ``_Span`` around a span that, on a server door, is only ever started,
given its attributes and ended: a lock, bounded attribute and event containers,
the sampler asked again, every processor's ``on_start`` and ``_on_ending``, and a
``ReadableSpan`` copied from it at the end. For a root call head sampling chose
(:class:`~eventwire.observability.tracing.HeadSampling`) on a provider whose
processors are the SDK's batch or simple ones (their ``on_start`` does nothing),
the span is instead a ``SpanContext`` while the call runs (current, so logs and
the pipeline see it) and one ``ReadableSpan`` handed to the provider's processor
when it ends: the same span, exported by the same processor and exporter.
Everything else (a caller's ``traceparent``, other samplers, other processors,
a tracer that is not the SDK's) takes the SDK's own path.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextvars import Token
from time import time_ns
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer
from opentelemetry.util.types import AttributeValue

from eventwire.observability.tracing import HeadSampling

__all__ = ["Ending", "ServerSpans"]

# What the SDK's RandomIdGenerator does, in one draw instead of two calls.
_SPAN_ID_BITS: Final = 64
_SPAN_ID_MASK: Final = (1 << _SPAN_ID_BITS) - 1
_UNSET: Final = Status(StatusCode.UNSET)
# Processors whose on_start and _on_ending do nothing: skipping them changes nothing.
_QUIET_ON_START: Final = (BatchSpanProcessor, SimpleSpanProcessor)


class Ending:
    """How a call's span ends: attributes added at the end and the status, built once
    per outcome (a door has a handful) rather than per call."""

    __slots__ = ("added", "attributes", "status")

    def __init__(
        self,
        base: Mapping[str, AttributeValue],
        added: Mapping[str, AttributeValue],
        error: str | None = None,
    ) -> None:
        self.added = dict(added)
        self.attributes = {**base, **added}
        self.status = _UNSET if error is None else Status(StatusCode.ERROR, error)


class _Started:
    __slots__ = ("context", "span", "start", "token")

    def __init__(
        self, context: SpanContext, span: Any, start: int, token: Token[otel_context.Context]
    ) -> None:
        self.context = context
        self.span = span  # the SDK's span, or None on the light path
        self.start = start
        self.token = token


class ServerSpans:
    """The spans of one door's method: ``start`` when a call arrives, ``end`` when it leaves."""

    def __init__(
        self,
        tracer: Tracer,
        sampling: HeadSampling,
        name: str,
        attributes: Mapping[str, AttributeValue],
        kind: SpanKind = SpanKind.SERVER,
    ) -> None:
        self._tracer = tracer
        self._sampling = sampling
        self._name = name
        self._attributes = dict(attributes)
        self._kind = kind
        self._light = _light(tracer, sampling)
        flags = TraceFlags.SAMPLED
        if isinstance(tracer, SdkTracer) and tracer.id_generator.is_trace_id_random():
            flags |= TraceFlags.RANDOM_TRACE_ID
        self._flags = TraceFlags(flags)

    def ending(self, added: Mapping[str, AttributeValue], error: str | None = None) -> Ending:
        return Ending(self._attributes, added, error)

    def start(self, parent: otel_context.Context | None) -> _Started | None:
        """The call's span, made current; ``parent`` is the caller's context (from its
        ``traceparent``) or None for a root call. None: head sampling left it out, and
        no span object exists for it."""
        if parent is None:
            parent = self._sampling.root()
            if parent is None:
                return None
            light = self._light
            # Checked again per call: a processor added later may want its on_start.
            if light is not None and light[1]._span_processors is light[2]:
                return self._start_light()
        span = self._tracer.start_span(
            self._name, context=parent, kind=self._kind, attributes=self._attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return _Started(span.get_span_context(), span, 0, token)

    def _start_light(self) -> _Started:
        bits = random.getrandbits(128 + _SPAN_ID_BITS)
        trace_id, span_id = bits >> _SPAN_ID_BITS, bits & _SPAN_ID_MASK
        if not (trace_id and span_id):  # one draw in 2**64: the SDK draws again too
            return self._start_light()
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=self._flags)
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(context)))
        return _Started(context, None, time_ns(), token)

    def end(self, started: _Started, ending: Ending) -> None:
        otel_context.detach(started.token)
        span = started.span
        if span is not None:
            if span.is_recording():
                span.set_attributes(ending.added)
                if ending.status is not _UNSET:
                    span.set_status(ending.status)
            span.end()
            return
        assert self._light is not None  # noqa: S101 - a light span was made with it
        tracer, processor, _ = self._light
        processor.on_end(
            ReadableSpan(
                self._name,
                started.context,
                None,
                tracer.resource,
                ending.attributes,
                (),
                (),
                self._kind,
                tracer.instrumentation_info,
                ending.status,
                started.start,
                time_ns(),
                tracer._instrumentation_scope,
            )
        )


def _light(tracer: Tracer, sampling: HeadSampling) -> tuple[SdkTracer, Any, object] | None:
    """The SDK tracer and its processor when a root span can skip the SDK's span object."""
    if not isinstance(tracer, SdkTracer) or sampling.rate is None:
        return None
    processor = tracer.span_processor
    inner = getattr(processor, "_span_processors", None)
    usable = (
        isinstance(tracer.id_generator, RandomIdGenerator)
        # The SDK's own span metrics count what its span object reports.
        and isinstance(getattr(tracer, "_tracer_metrics", None), NoOpTracerMetrics)
        # A disabled tracer makes no span at all.
        and tracer._is_enabled()
        and isinstance(processor, SynchronousMultiSpanProcessor)
        and inner is not None
        and all(type(p) in _QUIET_ON_START for p in inner)
    )
    return (tracer, processor, inner) if usable else None
