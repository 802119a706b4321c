"""The read routes' part of the OpenAPI document (see :mod:`.openapi` for the conventions).

Query parameters are derived from the request messages' descriptors, as the
gateway parses them (:mod:`.reads`): proto names, 64-bit integers as numbers
or decimal strings, enums by name or number. Each states the rule the read
checks (:mod:`eventwire.reads.checks`) enforce on it; what no schema
can state is in its description, and a request breaking it is refused with
400 naming the field: ``end`` must be greater than ``start`` when both are
set, ``after`` and ``from_start`` exclude each other, and cursors and page
tokens are opaque and signed, valid only for the tenant and filter that were
given them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.alerts import CONTROL_CHARS
from eventwire.ingest.validation import Limits, name_pattern
from eventwire.reads.checks import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_QUERY_LIMIT,
    GROUP_BY_PROPERTY,
    MAX_PAGE_SIZE,
    MAX_PROPERTY_KEY_CHARS,
    MAX_QUERY_LIMIT,
)

_INT64: Final = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
}
_LIMITS: Final = {
    "page_size": (0, MAX_PAGE_SIZE, f"0 means {DEFAULT_PAGE_SIZE}"),
    "limit": (0, MAX_QUERY_LIMIT, f"0 means {DEFAULT_QUERY_LIMIT}"),
}
_OPAQUE: Final = (
    "; opaque and signed: valid only for the tenant and the filter it was issued with "
    "(another, or a forged one, is refused with 400 naming the field)"
)
_DOCS: Final = {
    "device_id": "exact device id; empty = any",
    "alert_type": "exact alert type; empty = any",
    "event_name": "exact event name; empty = any",
    "start": "inclusive lower bound on timestamp (epoch ms); 0 = none",
    "end": "exclusive upper bound on timestamp (epoch ms); 0 = none; when start is set too, "
    "greater than start (else 400)",
    "page_token": "nextPageToken of the previous page, with the same filter" + _OPAQUE,
    "after": "resume after this cursor, with the same filter" + _OPAQUE,
    "from_start": "start at the oldest stored alert instead of now; not with after (400)",
    "follow": "keep the stream open and tail new commits",
    "group_by": "empty, event_name, user_id or properties.<key> "
    f"(a key of 1 to {MAX_PROPERTY_KEY_CHARS} characters, no control character)",
}
_GROUP_BY: Final = (
    "^(?:|event_name|user_id|"
    + GROUP_BY_PROPERTY.replace(".", "\\.")
    + "[^"
    + CONTROL_CHARS.pattern.removeprefix("[")
    + f"{{1,{MAX_PROPERTY_KEY_CHARS}}})$"
)
"""The read checks' rule on group_by (:func:`eventwire.reads.checks.validate_query`),
as a regular expression."""


def _filter(max_chars: int) -> dict[str, Any]:
    """A filter on a name: what a stored name can be
    (:func:`eventwire.ingest.validation.check_filter_name`)."""
    return {"type": "string", "maxLength": max_chars, "pattern": name_pattern()}


def _param_schema(field: FieldDescriptor, limits: Limits) -> dict[str, Any]:  # noqa: PLR0911 - one return per kind
    if field.enum_type is not None:
        names = [v.name for v in field.enum_type.values]
        return {"oneOf": [{"enum": names}, {"enum": [v.number for v in field.enum_type.values]}]}
    if field.type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if field.name in _LIMITS:
        low, high, _ = _LIMITS[field.name]
        return {"type": "integer", "minimum": low, "maximum": high}
    if field.type in _INT64:
        return {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    if field.name in ("device_id", "event_name"):
        return _filter(limits.max_name_chars)
    if field.name == "alert_type":
        return _filter(limits.max_alert_type_chars)
    if field.name == "group_by":
        return {"type": "string", "pattern": _GROUP_BY}
    return {"type": "string"}


def query_parameters(descriptor: Descriptor, limits: Limits) -> list[dict[str, Any]]:
    """One optional query parameter per field of ``descriptor``."""
    out = []
    for field in descriptor.fields:
        doc = _DOCS.get(field.name, "")
        if field.name in _LIMITS:
            doc = _LIMITS[field.name][2]
        param: dict[str, Any] = {
            "name": field.name,
            "in": "query",
            "required": False,
            "schema": _param_schema(field, limits),
        }
        if doc:
            param["description"] = doc
        out.append(param)
    return out


def read_schemas(message_schema: Callable[[Descriptor], dict[str, Any]]) -> dict[str, Any]:
    """Reply schemas of the read routes, by ``message_schema`` (replies: every field printed)."""
    return {
        name: message_schema(message.DESCRIPTOR)
        for name, message in (
            ("ListAlertsResponse", telemetry_pb2.ListAlertsResponse),
            ("QueryEventsResponse", analytics_pb2.QueryEventsResponse),
            ("EventAggregate", analytics_pb2.EventAggregate),
            ("ExportedEvent", analytics_pb2.ExportedEvent),
        )
    }


def _json_data(ref: str) -> dict[str, Any]:
    """An SSE ``data`` field that carries one JSON document (JSON Schema 2020-12)."""
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{ref}"},
    }


_SSE_EVENT: Final = {
    "description": "One Server-Sent Event (OpenAPI 3.1: the schema describes each event).",
    "oneOf": [
        {
            "type": "object",
            "description": "an alert: its cursor as the id, the Alert as JSON",
            "properties": {
                "event": {"const": "alert"},
                "id": {"type": "string", "minLength": 1},
                "data": _json_data("Alert"),
            },
            "required": ["event", "id", "data"],
        },
        {
            "type": "object",
            "description": "the stream's last event: why it ended, a google.rpc.Status as JSON",
            "properties": {"event": {"const": "error"}, "data": _json_data("Status")},
            "required": ["event", "data"],
        },
    ],
}


def read_operations(
    json_reply: Callable[[str, str], dict[str, Any]], errors: dict[str, Any], limits: Limits
) -> dict[str, dict[str, Any]]:
    """``{path: {"get": operation}}`` of the read routes."""

    def stream(media_type: str, ref: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {
                media_type: {
                    "schema": {"type": "string"},
                    "x-item-schema": {"$ref": f"#/components/schemas/{ref}"},
                }
            },
        }

    return {
        "/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "Stored alerts in commit order, a page at a time",
                "parameters": query_parameters(telemetry_pb2.ListAlertsRequest.DESCRIPTOR, limits),
                "responses": {"200": json_reply("ListAlertsResponse", "a page"), **errors},
            }
        },
        "/v1/alerts:watch": {
            "get": {
                "operationId": "watchAlerts",
                "summary": "Alerts as they commit, as Server-Sent Events",
                "description": "Each alert is an `alert` event whose `id` is its cursor and "
                "whose `data` is the Alert as JSON; send `Last-Event-ID` (EventSource does) "
                "to resume after it. A comment line every 15 s keeps idle connections open. "
                "An error after the stream started arrives as an `error` event carrying a "
                "google.rpc.Status, and ends the stream.",
                "parameters": [
                    *query_parameters(telemetry_pb2.WatchAlertsRequest.DESCRIPTOR, limits),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "cursor to resume after; wins over `after` (and "
                        "clears from_start)" + _OPAQUE,
                    },
                ],
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                    },
                    **errors,
                },
            }
        },
        "/v1/events:query": {
            "get": {
                "operationId": "queryEvents",
                "summary": "Exact counts per time bucket and group",
                "parameters": query_parameters(analytics_pb2.QueryEventsRequest.DESCRIPTOR, limits),
                "responses": {"200": json_reply("QueryEventsResponse", "the rows"), **errors},
            }
        },
        "/v1/events:export": {
            "get": {
                "operationId": "exportEvents",
                "summary": "Every stored event of the range once, in commit order, as NDJSON",
                "description": "One ExportedEvent (JSON) a line. With follow=true the stream "
                "stays open and tails new commits. An error after the stream started is a "
                'last line {"error": google.rpc.Status}.',
                "parameters": query_parameters(
                    analytics_pb2.ExportEventsRequest.DESCRIPTOR, limits
                ),
                "responses": {
                    "200": stream("application/x-ndjson", "ExportedEvent", "one event a line"),
                    **errors,
                },
            }
        },
    }
