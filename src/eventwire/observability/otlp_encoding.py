"""The OTLP span exporter's request, built in fewer Python calls than the SDK's encoder.

Exporting was three quarters of what tracing every call cost (bench/notes.md, T1): the
SDK's encoder (``opentelemetry.exporter.otlp.proto.common``) constructs one protobuf
object per span, status, event, link, attribute and attribute value, each through a
Python function. Here the whole ``ExportTraceServiceRequest`` is one constructor call
on the official ``opentelemetry.proto`` classes, given nested dicts and lists that upb
turns into messages in C. The message is the same, field for field:
``tests/unit/observability/test_otlp_encoding.py`` encodes a variety of spans with both
and compares, so an SDK whose encoding changes fails there. Anything this encoder does
not expect (an attribute value protobuf refuses, say) falls back to the SDK's encoder
for that batch, which logs and skips what it cannot encode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common import trace_encoder
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status

__all__ = ["FastOTLPSpanExporter", "encode_spans"]

_logger = logging.getLogger(__name__)

# By id: hashing an Enum member runs Python code (its __hash__); members are singletons.
_KINDS: Final = {
    id(SpanKind.INTERNAL): PbSpan.SPAN_KIND_INTERNAL,
    id(SpanKind.SERVER): PbSpan.SPAN_KIND_SERVER,
    id(SpanKind.CLIENT): PbSpan.SPAN_KIND_CLIENT,
    id(SpanKind.PRODUCER): PbSpan.SPAN_KIND_PRODUCER,
    id(SpanKind.CONSUMER): PbSpan.SPAN_KIND_CONSUMER,
}
_LOCAL: Final = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE: Final = _LOCAL | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
# AnyValue's field per exact type; subclasses (a bool is an int) and containers go
# through _any, in the SDK's order of isinstance checks.
_FIELDS: Final[dict[type, str]] = {
    str: "string_value",
    int: "int_value",
    float: "double_value",
    bool: "bool_value",
    bytes: "bytes_value",
}

Dict = dict[str, Any]


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The SDK's ``encode_spans(spans)``, the same message."""
    try:
        # upb takes a dict for a message (the stubs do not say so).
        return ExportTraceServiceRequest(resource_spans=_resource_spans(spans))  # type: ignore[arg-type]
    except Exception:
        _logger.debug("spans the fast encoder refused; the SDK's encodes them", exc_info=True)
        return trace_encoder.encode_spans(spans)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (its channel, retries, headers and metrics)
    with :func:`encode_spans` for a request."""

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return encode_spans(data)


def _resource_spans(spans: Sequence[ReadableSpan]) -> list[Dict]:
    # Grouped as the SDK groups them (resource, then scope, in order of first
    # appearance, equal ones together); a run of spans sharing both objects, the
    # usual case, looks neither up.
    groups: dict[Resource, dict[InstrumentationScope | None, list[Dict]]] = {}
    last: tuple[object, object] = (None, None)
    bucket: list[Dict] = []
    # Keyed by id: every object keyed is alive (the spans hold them) until this returns.
    seen: dict[int, Any] = {}
    for span in spans:
        resource, scope = span._resource, span._instrumentation_scope or None
        if resource is not last[0] or scope is not last[1]:
            bucket = groups.setdefault(resource, {}).setdefault(scope, [])
            last = (resource, scope)
        bucket.append(_span(span, seen))
    return [
        {
            "resource": {"attributes": _attributes(resource.attributes)},
            "scope_spans": [
                {"scope": _scope(scope), "spans": encoded, "schema_url": _schema(scope)}
                for scope, encoded in scopes.items()
            ],
            "schema_url": resource.schema_url,
        }
        for resource, scopes in groups.items()
    ]


def _scope(scope: InstrumentationScope | None) -> Dict:
    if scope is None:
        return {}
    return {
        "name": scope.name,
        "version": scope.version,
        "attributes": _attributes(scope.attributes),
    }


def _schema(scope: InstrumentationScope | None) -> str | None:
    return None if scope is None else scope.schema_url


def _span(span: ReadableSpan, seen: dict[int, Any]) -> Dict:
    trace_id, span_id, _, _, state, _ = span._context  # type: ignore[misc]
    parent = span._parent
    attributes = span._attributes
    status = span._status
    events = span._events
    links = span._links
    encoded: Dict = {
        "trace_id": trace_id.to_bytes(16, "big"),
        "span_id": span_id.to_bytes(8, "big"),
        "name": span._name,
        "kind": _KINDS[id(span._kind)],
        "start_time_unix_nano": span._start_time,
        "end_time_unix_nano": span._end_time,
        "status": seen.get(id(status)) or _status(status, seen),
        "flags": _LOCAL,
    }
    if state:
        encoded["trace_state"] = ",".join([f"{key}={value}" for key, value in state.items()])
    if parent is not None:
        encoded["parent_span_id"] = parent[1].to_bytes(8, "big")
        if parent[2]:
            encoded["flags"] = _REMOTE
    if attributes:
        key = id(attributes)
        encoded["attributes"] = seen.get(key) or seen.setdefault(key, _attributes(attributes))
        if dropped := getattr(attributes, "dropped", 0):
            encoded["dropped_attributes_count"] = dropped
    if events:
        encoded["events"] = [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": _attributes(event.attributes),
                "dropped_attributes_count": event.dropped_attributes,
            }
            for event in events
        ]
        if dropped := getattr(events, "dropped", 0):
            encoded["dropped_events_count"] = dropped
    if links:
        encoded["links"] = [_link(link) for link in links]
        if dropped := getattr(links, "dropped", 0):
            encoded["dropped_links_count"] = dropped
    return encoded


def _status(status: Status, seen: dict[int, Any]) -> Dict:
    encoded = {"code": status.status_code.value, "message": status.description}
    seen[id(status)] = encoded
    return encoded


def _link(link: Link) -> Dict:
    trace_id, span_id, remote, _, _, _ = link.context
    attributes = link.attributes
    encoded: Dict = {
        "trace_id": trace_id.to_bytes(16, "big"),
        "span_id": span_id.to_bytes(8, "big"),
        "flags": _REMOTE if remote else _LOCAL,
    }
    if attributes:
        encoded["attributes"] = _attributes(attributes)
        encoded["dropped_attributes_count"] = link.dropped_attributes
    return encoded


def _attributes(attributes: Mapping[str, Any] | None) -> list[Dict]:
    if not attributes:
        return []
    fields = _FIELDS
    return [
        {"key": key, "value": {field: value}}
        if (field := fields.get(type(value))) is not None
        else {"key": key, "value": _any(value)}
        for key, value in attributes.items()
    ]


def _any(value: Any) -> Dict:  # noqa: PLR0911 - one return per AnyValue case, as the SDK's
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
