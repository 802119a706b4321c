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
import traceback
from collections.abc import Mapping, Sequence
from contextvars import Token
from time import time_ns
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer
from opentelemetry.util.types import Attributes, AttributeValue

from eventwire.observability.tracing import HeadSampling

__all__ = ["Ending", "ServerSpans", "linked_span"]

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
        # Only a root span head sampling chose skips the SDK's (that would ask a sampler).
        self._light = None if sampling.rate is None else _light(tracer)
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


def _light(tracer: Tracer) -> tuple[SdkTracer, Any, object] | None:
    """The SDK tracer and its processor when a span can skip the SDK's span object."""
    if not isinstance(tracer, SdkTracer):
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


def linked_span(
    tracer: Tracer,
    name: str,
    *,
    parent: SpanContext,
    links: Sequence[SpanContext],
    attributes: Mapping[str, AttributeValue],
    start_time: int,
) -> trace.Span:
    """A span under ``parent`` linking ``links`` (sampled spans of this process): the
    group commit's span. Without the SDK's span object when :func:`_light` allows
    and the sampler samples every child of a sampled parent (what ``ParentBased``
    does by default): the SDK would wrap each link's (absent) attributes in their
    own bounded, locked container, one per request the commit carries."""
    light = _light(tracer)
    if light is None or not _children_follow(getattr(tracer, "sampler", None)):
        return tracer.start_span(
            name,
            context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
            links=[trace.Link(context) for context in links],
            attributes=attributes,
            start_time=start_time,
        )
    return _LinkedSpan(light[0], light[1], name, parent, links, attributes, start_time)


def _children_follow(sampler: object) -> bool:
    """Whether ``sampler`` samples every span whose local parent is sampled."""
    sampler = getattr(sampler, "_inner", sampler)  # HeadSampling's wrapper
    if isinstance(sampler, ParentBased):
        return sampler._local_parent_sampled is ALWAYS_ON
    return sampler is ALWAYS_ON


class _LinkedSpan(trace.Span):
    """A recording span kept as plain values and handed to the processor as one
    ``ReadableSpan`` when it ends; what the group commit calls of a span."""

    def __init__(  # noqa: PLR0917 - a span's parts
        self,
        tracer: SdkTracer,
        processor: Any,
        name: str,
        parent: SpanContext,
        links: Sequence[SpanContext],
        attributes: Mapping[str, AttributeValue],
        start_time: int,
    ) -> None:
        self._tracer = tracer
        self._processor = processor
        self._name = name
        self._parent = parent
        self._links = tuple(map(trace.Link, links))
        self._attributes = dict(attributes)
        self._events: list[Event] = []
        self._status = _UNSET
        self._start = start_time
        self._ended = False
        span_id = 0
        while not span_id:
            span_id = random.getrandbits(_SPAN_ID_BITS)
        self._context = SpanContext(
            parent.trace_id,
            span_id,
            is_remote=False,
            trace_flags=parent.trace_flags,
            trace_state=parent.trace_state,
        )

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not self._ended:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.set_attributes({key: value})

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if not self._ended:
            self._events.append(Event(name, attributes, timestamp))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if not self._ended and status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, AttributeValue] = {
            "exception.type": kind.__qualname__
            if module in {"builtins", ""}
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", {**event, **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        tracer = self._tracer
        self._processor.on_end(
            ReadableSpan(
                self._name,
                self._context,
                self._parent,
                tracer.resource,
                self._attributes,
                tuple(self._events),
                self._links,
                SpanKind.INTERNAL,
                tracer.instrumentation_info,
                self._status,
                self._start,
                time_ns() if end_time is None else end_time,
                tracer._instrumentation_scope,
            )
        )
