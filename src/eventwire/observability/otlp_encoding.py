"""The OTLP span exporter's request, encoded in far fewer Python calls than the SDK's.

Exporting was three quarters of what tracing every call cost (bench/notes.md, T1): the
SDK's encoder (``opentelemetry.exporter.otlp.proto.common``) constructs one protobuf
object per span, status, event, link, attribute and attribute value, each through a
Python function and upb's Python layer: 176,000 instructions a server span (callgrind,
``bench/otlp_encode_instructions.py``). Here the request's protobuf encoding is written
as bytes, field by field (each key read from the official ``opentelemetry.proto``
descriptors), and parsed once into the official ``ExportTraceServiceRequest``, which
the SDK's exporter then sends as ever: 39,000 a span. (Building the message from
nested dicts in one upb constructor call was 65,000: upb's Python layer wraps every
sub-message.) What a batch repeats (a door's attribute set and status, span names,
the resource) is encoded once per batch. ``tests/unit/observability/test_otlp_encoding.py`` encodes
a variety of spans with the SDK's encoder and this one and asserts equal messages,
byte for byte, so an SDK whose encoding changes fails there. A value the wire writer
does not handle (a sequence, a mapping, None) goes through upb's message; anything
that fails (an int beyond int64, say) sends the batch through the SDK's encoder,
which logs and skips what it cannot encode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from struct import Struct
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common import trace_encoder
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    KeyValue,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    InstrumentationScope as PbScope,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, SpanFlags
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

__all__ = ["FastOTLPSpanExporter", "encode_spans"]

_logger = logging.getLogger(__name__)


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The SDK's ``encode_spans(spans)``, the same message."""
    try:
        return ExportTraceServiceRequest.FromString(_request(spans))
    except Exception:
        _logger.debug("spans the fast encoder refused; the SDK's encodes them", exc_info=True)
        return trace_encoder.encode_spans(spans)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (its channel, retries, headers and metrics)
    with :func:`encode_spans` for a request."""

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return encode_spans(data)


# -- the wire format: a field is its key (number, wire type) then its value ----------

_WIRE_TYPES: Final = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}
_INT64: Final = range(-(2**63), 2**63)
_DOUBLE: Final = Struct("<d").pack
_SMALL: Final = [bytes((n,)) for n in range(0x80)]
# Most spans' (SpanContext's default): an empty TraceState's len() is a Python call.
_NO_STATE: Final = DEFAULT_TRACE_STATE


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(message: type[Message], field: str) -> bytes:
    described = message.DESCRIPTOR.fields_by_name[field]
    return _varint(described.number << 3 | _WIRE_TYPES.get(described.type, 0))


def _framed(key: bytes, body: bytes) -> bytes:
    return key + _varint(len(body)) + body


def _text(key: bytes, text: str) -> bytes:
    return _framed(key, text.encode())


_REQUEST_RESOURCE_SPANS: Final = _key(ExportTraceServiceRequest, "resource_spans")
_RESOURCE: Final = _key(ResourceSpans, "resource")
_SCOPE_SPANS: Final = _key(ResourceSpans, "scope_spans")
_RESOURCE_SCHEMA: Final = _key(ResourceSpans, "schema_url")
_RESOURCE_ATTRIBUTES: Final = _key(PbResource, "attributes")
_SCOPE: Final = _key(ScopeSpans, "scope")
_SPANS: Final = _key(ScopeSpans, "spans")
_SCOPE_SCHEMA: Final = _key(ScopeSpans, "schema_url")
_SCOPE_NAME: Final = _key(PbScope, "name")
_SCOPE_VERSION: Final = _key(PbScope, "version")
_SCOPE_ATTRIBUTES: Final = _key(PbScope, "attributes")
# With their lengths: a trace id is 16 bytes, a span id 8.
_TRACE_ID: Final = _key(PbSpan, "trace_id") + b"\x10"
_SPAN_ID: Final = _key(PbSpan, "span_id") + b"\x08"
_TRACE_STATE: Final = _key(PbSpan, "trace_state")
_PARENT_SPAN_ID: Final = _key(PbSpan, "parent_span_id") + b"\x08"
_NAME: Final = _key(PbSpan, "name")
_START: Final = _key(PbSpan, "start_time_unix_nano")
_END: Final = _key(PbSpan, "end_time_unix_nano")
_ATTRIBUTES: Final = _key(PbSpan, "attributes")
_DROPPED_ATTRIBUTES: Final = _key(PbSpan, "dropped_attributes_count")
_EVENTS: Final = _key(PbSpan, "events")
_DROPPED_EVENTS: Final = _key(PbSpan, "dropped_events_count")
_LINKS: Final = _key(PbSpan, "links")
_DROPPED_LINKS: Final = _key(PbSpan, "dropped_links_count")
_STATUS: Final = _key(PbSpan, "status")
_EVENT_TIME: Final = _key(PbSpan.Event, "time_unix_nano")
_EVENT_NAME: Final = _key(PbSpan.Event, "name")
_EVENT_ATTRIBUTES: Final = _key(PbSpan.Event, "attributes")
_EVENT_DROPPED: Final = _key(PbSpan.Event, "dropped_attributes_count")
_LINK_TRACE_ID: Final = _key(PbSpan.Link, "trace_id") + b"\x10"
_LINK_SPAN_ID: Final = _key(PbSpan.Link, "span_id") + b"\x08"
_LINK_ATTRIBUTES: Final = _key(PbSpan.Link, "attributes")
_LINK_DROPPED: Final = _key(PbSpan.Link, "dropped_attributes_count")
_STATUS_MESSAGE: Final = _key(PbStatus, "message")
_STATUS_CODE: Final = _key(PbStatus, "code")
_KV_KEY: Final = _key(KeyValue, "key")
_KV_VALUE: Final = _key(KeyValue, "value")
_STRING: Final = _key(AnyValue, "string_value")
_INT: Final = _key(AnyValue, "int_value")
_DOUBLE_VALUE: Final = _key(AnyValue, "double_value")
_BYTES: Final = _key(AnyValue, "bytes_value")
_TRUE: Final = _key(AnyValue, "bool_value") + b"\x01"
_FALSE: Final = _key(AnyValue, "bool_value") + b"\x00"


def _flags(key: bytes, value: int) -> bytes:
    return key + value.to_bytes(4, "little")


_HAS_IS_REMOTE: Final = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE: Final = _HAS_IS_REMOTE | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_LOCAL: Final = _flags(_key(PbSpan, "flags"), _HAS_IS_REMOTE)
_REMOTE: Final = _flags(_key(PbSpan, "flags"), _IS_REMOTE)
_LINK_LOCAL: Final = _flags(_key(PbSpan.Link, "flags"), _HAS_IS_REMOTE)
_LINK_REMOTE: Final = _flags(_key(PbSpan.Link, "flags"), _IS_REMOTE)
# By id: hashing an Enum member runs Python code (its __hash__); members are singletons.
_KINDS: Final = {
    id(kind): _key(PbSpan, "kind") + _varint(getattr(PbSpan, f"SPAN_KIND_{kind.name}"))
    for kind in SpanKind
}


# -- the request ------------------------------------------------------------------


def _request(spans: Sequence[ReadableSpan]) -> bytes:
    # Grouped as the SDK groups them (resource, then scope, in order of first
    # appearance, equal ones together); a run of spans sharing both objects, the
    # usual case, looks neither up.
    groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    last: tuple[object, object] = (None, None)
    bucket: list[bytes] = []
    # What a batch repeats, encoded once: keyed by id (every object keyed is alive,
    # held by the spans, until this returns), or by value.
    seen: dict[object, bytes] = {}
    small = _SMALL
    for span in spans:
        resource, scope = span._resource, span._instrumentation_scope or None
        if resource is not last[0] or scope is not last[1]:
            bucket = groups.setdefault(resource, {}).setdefault(scope, [])
            last = (resource, scope)
        encoded = _span(span, seen)
        size = len(encoded)
        bucket += (_SPANS, small[size] if size < 0x80 else _varint(size), encoded)
    return b"".join(
        _framed(
            _REQUEST_RESOURCE_SPANS,
            b"".join(
                [
                    _framed(
                        _RESOURCE, _attributes(_RESOURCE_ATTRIBUTES, resource.attributes, seen)
                    ),
                    *(
                        _framed(_SCOPE_SPANS, _scope_spans(scope, b"".join(encoded), seen))
                        for scope, encoded in scopes.items()
                    ),
                    _text(_RESOURCE_SCHEMA, resource.schema_url or ""),
                ]
            ),
        )
        for resource, scopes in groups.items()
    )


def _scope_spans(
    scope: InstrumentationScope | None, spans: bytes, seen: dict[object, bytes]
) -> bytes:
    if scope is None:
        return _framed(_SCOPE, b"") + spans
    described = b"".join(
        [
            _text(_SCOPE_NAME, scope.name),
            _text(_SCOPE_VERSION, scope.version or ""),
            _attributes(_SCOPE_ATTRIBUTES, scope.attributes, seen),
        ]
    )
    return _framed(_SCOPE, described) + spans + _text(_SCOPE_SCHEMA, scope.schema_url or "")


def _span(span: ReadableSpan, seen: dict[object, bytes]) -> bytes:
    trace_id, span_id, _, _, state, _ = span._context  # type: ignore[misc]
    parent = span._parent
    name = span._name
    parts = [
        _TRACE_ID,
        trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        span_id.to_bytes(8, "big"),
        seen.get(name) or _seen(seen, name, _text(_NAME, name)),
        _KINDS[id(span._kind)],
    ]
    if state is not _NO_STATE and state:
        parts.append(
            _text(_TRACE_STATE, ",".join([f"{key}={value}" for key, value in state.items()]))
        )
    if parent is None:
        parts.append(_LOCAL)
    else:
        parts += (_PARENT_SPAN_ID, parent[1].to_bytes(8, "big"), _REMOTE if parent[2] else _LOCAL)
    if start := span._start_time:
        parts += (_START, start.to_bytes(8, "little"))
    if end := span._end_time:
        parts += (_END, end.to_bytes(8, "little"))
    if attributes := span._attributes:
        key = id(attributes)
        parts.append(seen.get(key) or _seen(seen, key, _attributes(_ATTRIBUTES, attributes, seen)))
        if dropped := getattr(attributes, "dropped", 0):
            parts += (_DROPPED_ATTRIBUTES, _varint(dropped))
    # Events' and links' own fields, not their properties (a Python call each): what
    # the properties return, for the SDK's classes; another class that lacks them
    # sends the batch through the SDK's encoder.
    events = span._events
    for event in events:
        attributes = event._attributes
        body = b"".join(
            [
                _EVENT_TIME,
                event._timestamp.to_bytes(8, "little"),
                _text(_EVENT_NAME, event._name),
                _attributes(_EVENT_ATTRIBUTES, attributes, seen) if attributes else b"",
                _EVENT_DROPPED + _varint(dropped)
                if (dropped := getattr(attributes, "dropped", 0))
                else b"",
            ]
        )
        parts += (_EVENTS, _varint(len(body)), body)
    if dropped := getattr(events, "dropped", 0):
        parts += (_DROPPED_EVENTS, _varint(dropped))
    links = span._links
    for link in links:
        trace_id, span_id, remote, _, _, _ = link._context
        attributes = link._attributes
        body = b"".join(
            [
                _LINK_TRACE_ID,
                trace_id.to_bytes(16, "big"),
                _LINK_SPAN_ID,
                span_id.to_bytes(8, "big"),
                _attributes(_LINK_ATTRIBUTES, attributes, seen) if attributes else b"",
                _LINK_DROPPED + _varint(dropped)
                if (dropped := getattr(attributes, "dropped", 0))
                else b"",
                _LINK_REMOTE if remote else _LINK_LOCAL,
            ]
        )
        parts += (_LINKS, _varint(len(body)), body)
    if dropped := getattr(links, "dropped", 0):
        parts += (_DROPPED_LINKS, _varint(dropped))
    status = span._status
    parts.append(seen.get(id(status)) or _seen(seen, id(status), _status(status)))
    return b"".join(parts)


def _seen(seen: dict[object, bytes], key: object, encoded: bytes) -> bytes:
    seen[key] = encoded
    return encoded


def _status(status: Status) -> bytes:
    code, message = status.status_code.value, status.description
    return _framed(
        _STATUS,
        (_STATUS_CODE + _varint(code) if code else b"")
        + (_text(_STATUS_MESSAGE, message) if message else b""),
    )


def _attributes(
    key: bytes, attributes: Mapping[str, Any] | None, seen: dict[object, bytes]
) -> bytes:
    """The ``key`` fields of ``attributes``, one ``KeyValue`` each; a (key, value) pair
    already encoded in this batch is reused (strings, ints and bools: a float's -0.0
    equals 0.0)."""
    if not attributes:
        return b""
    parts: list[bytes] = []
    for pair in attributes.items():
        kind = type(pair[1])
        cached = kind is str or kind is int or kind is bool
        body = seen.get((kind, *pair)) if cached else None
        if body is None:
            name, value = pair
            body = _text(_KV_KEY, name) + _framed(_KV_VALUE, _value(value))
            if cached:
                seen[(kind, name, value)] = body
        size = len(body)
        parts += (key, _SMALL[size] if size < 0x80 else _varint(size), body)
    return b"".join(parts)


def _value(value: Any) -> bytes:
    kind = type(value)
    if kind is str:
        return _text(_STRING, value)
    if kind is int:
        if value not in _INT64:
            raise ValueError(f"{value} is out of int64's range")
        return _INT + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is float:
        return _DOUBLE_VALUE + _DOUBLE(value)
    if kind is bytes:
        return _framed(_BYTES, value)
    # The rest (subclasses, sequences, mappings, None) through upb, as the SDK does.
    return AnyValue(**_any(value)).SerializeToString()


def _any(value: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per AnyValue case, as the SDK's
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, int):
        return {"int_value": value}
    if isinstance(value, float):
        return {"double_value": value}
    if isinstance(value, bytes):
        return {"bytes_value": value}
    if isinstance(value, Sequence):
        return {"array_value": {"values": [_any(item) for item in value]}}
    if isinstance(value, Mapping):
        return {
            "kvlist_value": {
                "values": [{"key": str(key), "value": _any(item)} for key, item in value.items()]
            }
        }
    raise TypeError(f"Invalid type {type(value)} of value {value}")
