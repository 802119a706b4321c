"""The read routes' part of the OpenAPI document (see :mod:`.openapi` for the conventions).

Query parameters are derived from the request messages' descriptors, as the
gateway parses them (:mod:`.reads`): proto names, 64-bit integers as numbers
or decimal strings, enums by name or number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.read_checks import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_QUERY_LIMIT,
    MAX_PAGE_SIZE,
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
_DOCS: Final = {
    "start": "inclusive lower bound on timestamp (epoch ms); 0 = none",
    "end": "exclusive upper bound on timestamp (epoch ms); 0 = none; greater than start",
    "page_token": "nextPageToken of the previous page, with the same filter",
    "after": "resume after this cursor (same tenant, same filter)",
    "group_by": "empty, event_name, user_id or properties.<key>",
}


def _param_schema(field: FieldDescriptor) -> dict[str, Any]:
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
    return {"type": "string"}


def query_parameters(descriptor: Descriptor) -> list[dict[str, Any]]:
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
            "schema": _param_schema(field),
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


def read_operations(
    json_reply: Callable[[str, str], dict[str, Any]], errors: dict[str, Any]
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
                "summary": "Stored alerts in commit order, a page at a time (ListAlerts)",
                "parameters": query_parameters(telemetry_pb2.ListAlertsRequest.DESCRIPTOR),
                "responses": {"200": json_reply("ListAlertsResponse", "a page"), **errors},
            }
        },
        "/v1/alerts:watch": {
            "get": {
                "operationId": "watchAlerts",
                "summary": "Alerts as they commit, as Server-Sent Events (WatchAlerts)",
                "description": "Each alert is an `alert` event whose `id` is its cursor and "
                "whose `data` is the Alert as JSON; send `Last-Event-ID` (EventSource does) "
                "to resume after it. A comment line every 15 s keeps idle connections open. "
                "An error after the stream started arrives as an `error` event carrying a "
                "google.rpc.Status, and ends the stream.",
                "parameters": [
                    *query_parameters(telemetry_pb2.WatchAlertsRequest.DESCRIPTOR),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "cursor to resume after; wins over `after`",
                    },
                ],
                "responses": {
                    "200": stream("text/event-stream", "Alert", "an endless event stream"),
                    **errors,
                },
            }
        },
        "/v1/events:query": {
            "get": {
                "operationId": "queryEvents",
                "summary": "Exact counts per time bucket and group (QueryEvents)",
                "parameters": query_parameters(analytics_pb2.QueryEventsRequest.DESCRIPTOR),
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
                "parameters": query_parameters(analytics_pb2.ExportEventsRequest.DESCRIPTOR),
                "responses": {
                    "200": stream("application/x-ndjson", "ExportedEvent", "one event a line"),
                    **errors,
                },
            }
        },
    }
