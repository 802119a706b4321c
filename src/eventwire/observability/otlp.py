"""OTLP span export with a cheaper encoder than the SDK's.

The OpenTelemetry exporter builds a protobuf object per span, per attribute,
per value, then serializes them: ~25 us of CPU per span in Python, on the
server's own GIL and core, more than creating the span costs. :func:`encode_spans`
writes the same OTLP/protobuf wire bytes directly (a few byte strings joined
per span; the attribute pairs a server repeats on every span, such as
``rpc.method``, are encoded once and reused): ~10 us per span, and the bytes
go to the wire as they are (bench/span_cost.py has the per-span picture).
The request decodes to the same ``ExportTraceServiceRequest``
the SDK's encoder builds (a test pins that); only spans of different but equal
``Resource`` objects are grouped separately, which OTLP allows.

:class:`OTLPSpanExporter` is the SDK's OTLP/gRPC exporter with this encoder:
endpoint, headers, TLS, compression, timeout and retries, and the standard
``OTEL_EXPORTER_OTLP_*`` variables that set them, are all the SDK's.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Final

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as _SdkOTLPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

__all__ = ["OTLPSpanExporter", "encode_spans"]

_SMALL: Final = [bytes((n,)) for n in range(0x80)]
_FIXED32: Final = struct.Struct("<I").pack
_FIXED64: Final = struct.Struct("<Q").pack
_DOUBLE: Final = struct.Struct("<d").pack
_U64: Final = (1 << 64) - 1
# Span.flags: the parent's "is remote" bit is known, and (second bit) set.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
_FLAGS_LOCAL: Final = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE)
_FLAGS_REMOTE: Final = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE)
_CACHED_PAIRS: Final = 4096
_EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (one key byte or two), length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:  # noqa: PLR0911 - one return per oneof case
    """An ``AnyValue``'s fields, in the SDK encoder's order of type checks."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value & _U64)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        items = b"".join(_field(b"\x0a", _any_value(v)) for v in value)
        return _field(b"\x2a", items)
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"cannot encode attribute value of type {type(value).__name__}")


def _key_value(key: str, value: object) -> bytes:
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


class _Pairs:
    """Encoded ``KeyValue`` fields (with their field key), memoized for scalar values."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, object, type], bytes] = {}

    def encode(self, tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
        if not attributes:
            return b""
        cache = self._cache
        out = []
        for key, value in attributes.items():
            if isinstance(value, str | int | float | bool):
                memo = (key, value, type(value))
                encoded = cache.get(memo)
                if encoded is None:
                    encoded = _key_value(key, value)
                    if len(cache) < _CACHED_PAIRS:
                        cache[memo] = encoded
            else:
                try:
                    encoded = _key_value(key, value)
                except TypeError:
                    continue  # the SDK's encoder logs and skips such a value too
            out.append(_field(tag, encoded))
        return b"".join(out)


def _span_id(context: SpanContext) -> bytes:
    return context.span_id.to_bytes(8, "big")


class _Encoder:
    def __init__(self) -> None:
        self._pairs = _Pairs()
        # Resources and scopes are few and long-lived: encoded once, kept with
        # the object so that its id() cannot be reused by another while cached.
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}

    def _resource(self, resource: Resource) -> bytes:
        cached = self._resources.get(id(resource))
        if cached is None:
            if len(self._resources) >= 64:
                self._resources.clear()
            encoded = _field(b"\x0a", self._pairs.encode(b"\x0a", resource.attributes))
            cached = self._resources[id(resource)] = (resource, encoded)
        return cached[1]

    def _scope(self, scope: InstrumentationScope | None) -> bytes:
        cached = self._scopes.get(id(scope))
        if cached is None:
            if len(self._scopes) >= 64:
                self._scopes.clear()
            fields = b""
            if scope is not None:
                fields = _field(b"\x0a", scope.name.encode()) if scope.name else b""
                fields += _field(b"\x12", scope.version.encode()) if scope.version else b""
                fields += self._pairs.encode(b"\x1a", scope.attributes)
            cached = self._scopes[id(scope)] = (scope, _field(b"\x0a", fields))
        return cached[1]

    def span(self, span: ReadableSpan) -> bytes:
        pairs = self._pairs
        context = span.get_span_context()
        assert context is not None  # noqa: S101 - a finished SDK span has its context
        parent = span.parent
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", _span_id(context)]
        if context.trace_state:
            state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
            parts.append(_field(b"\x1a", state.encode()))
        if parent is not None:
            parts += (b"\x22\x08", _span_id(parent))
        parts += (
            _FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL,
            _field(b"\x2a", span.name.encode()),
            b"\x30",
            _SMALL[span.kind.value + 1],  # OTLP numbers INTERNAL=1 ... CONSUMER=5
        )
        if span.start_time:
            parts += (b"\x39", _FIXED64(span.start_time))
        if span.end_time:
            parts += (b"\x41", _FIXED64(span.end_time))
        parts.append(pairs.encode(b"\x4a", span.attributes))
        if span.dropped_attributes:
            parts += (b"\x50", _varint(span.dropped_attributes))
        for event in span.events:
            fields = b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b""
            fields += _field(b"\x12", event.name.encode()) if event.name else b""
            fields += pairs.encode(b"\x1a", event.attributes)
            if event.dropped_attributes:
                fields += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(b"\x5a", fields))
        if span.dropped_events:
            parts += (b"\x60", _varint(span.dropped_events))
        for link in span.links:
            linked = link.context
            fields = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big") + b"\x12\x08"
            fields += _span_id(linked) + pairs.encode(b"\x22", link.attributes)
            if link.dropped_attributes:
                fields += b"\x28" + _varint(link.dropped_attributes)
            fields += b"\x35" + _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if linked.is_remote else 0))
            parts.append(_field(b"\x6a", fields))
        if span.dropped_links:
            parts += (b"\x70", _varint(span.dropped_links))
        status = span.status
        code = status.status_code.value
        fields = _field(b"\x12", status.description.encode()) if status.description else b""
        fields += b"\x18" + _SMALL[code] if code else b""
        parts.append(_field(b"\x7a", fields))
        return b"".join(parts)

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        # Resource -> scope -> spans, each in first-seen order, as the SDK groups them.
        groups: dict[
            int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]
        ]
        groups = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            scopes = groups.setdefault(id(resource), (resource, {}))[1]
            scopes.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", self.span(span)))
        out = []
        for resource, scopes in groups.values():
            body = [self._resource(resource)]
            for scope, encoded in scopes.values():
                scope_spans = self._scope(scope) + b"".join(encoded)
                if scope is not None and scope.schema_url:
                    scope_spans += _field(b"\x1a", scope.schema_url.encode())
                body.append(_field(b"\x12", scope_spans))
            if resource.schema_url:
                body.append(_field(b"\x1a", resource.schema_url.encode()))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """``spans`` as a serialized OTLP ``ExportTraceServiceRequest``."""
    return _Encoder().request(spans)


class _EncodedTraceServiceStub:
    """``TraceServiceStub`` whose ``Export`` sends a request already serialized."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export: grpc.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse]
        self.Export = channel.unary_unary(
            _EXPORT_METHOD,
            request_serializer=None,  # bytes go on the wire as they are
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class OTLPSpanExporter(_SdkOTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter, encoding with :func:`encode_spans`.

    Its stub sends the encoded bytes as they are: parsing them into a message
    for the SDK's stub to serialize again would cost a quarter of the export
    thread's CPU.
    """

    def __init__(self) -> None:
        super().__init__()
        self._encoder = _Encoder()
        # The SDK builds its client from _stub, again after a reconnect.
        self._stub = _EncodedTraceServiceStub
        self._client = self._stub(self._channel)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return self._encoder.request(data)
