"""The OpenAPI 3.1 document of the JSON/HTTP gateway, served at ``/openapi.json``.

Message schemas are derived from the protobuf descriptors, so they cannot drift
from the contract: proto3 JSON names (lowerCamelCase), 64-bit integers as
strings in replies (and string or number in requests), every field printed in
replies. The static part of the validation limits is written into the request
schemas; the server remains the authority (timestamps, for instance, are
checked against its clock).
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from eventwire._version import __version__ as _version
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.openapi_reads import read_operations, read_schemas
from eventwire.ingest.service import MAX_BATCH_EVENTS
from eventwire.ingest.validation import DEFAULT_LIMITS, MIN_TIMESTAMP_MS

_INT64_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_INT64_IN: Final = {
    "oneOf": [
        # No int64 bounds here: JSON parsers (orjson included) round integers
        # beyond 64 bits to floats, so the bound could not be enforced exactly;
        # each field's own range is checked by validation instead.
        {"type": "integer"},
        {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    ],
    "description": "64-bit integer: a JSON number or a decimal string",
}
_INT64_OUT: Final = {
    "type": "string",
    "pattern": "^-?[0-9]+$",
    "description": "64-bit integer, written as a decimal string (proto3 JSON mapping)",
}
_TIMESTAMP_DOC: Final = (
    f"Unix epoch MILLISECONDS; 0 means now (server receive time). Otherwise between "
    f"{MIN_TIMESTAMP_MS} (2000-01-01) and {DEFAULT_LIMITS.max_future_ms // 3_600_000} hours "
    f"after the server's clock."
)


def _field_schema(field: FieldDescriptor, *, request: bool) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if field.is_repeated:
        return {"type": "array", "items": _single_field_schema(field, request=request)}
    return _single_field_schema(field, request=request)


def _single_field_schema(field: FieldDescriptor, *, request: bool) -> dict[str, Any]:  # noqa: PLR0911 - one return per field type
    if field.message_type is not None:
        return {"$ref": f"#/components/schemas/{field.message_type.name}"}
    if field.enum_type is not None:
        names = [value.name for value in field.enum_type.values]
        if request:
            # proto3 JSON takes an enum by name or by number.
            return {"oneOf": [{"enum": names}, {"type": "integer"}]}
        return {"enum": names}
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    if field.type in _INT64_TYPES:
        return dict(_INT64_IN if request else _INT64_OUT)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if field.type == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    raise NotImplementedError(f"no JSON schema for {field.full_name}")  # pragma: no cover


def _message_schema(
    descriptor: Descriptor,
    *,
    request: bool,
    required: tuple[str, ...] = (),
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Requests: the named fields are required, others optional, none unknown.

    Replies: every field is always present.
    """
    properties: dict[str, Any] = {}
    for field in descriptor.fields:
        schema = _field_schema(field, request=request)
        schema.update((extra or {}).get(field.name, {}))
        if request and field.name not in required:
            schema = _nullable(schema)
        properties[field.json_name] = schema
    schema = {"type": "object", "properties": properties}
    if request:
        schema["additionalProperties"] = False
        if required:
            schema["required"] = [descriptor.fields_by_name[name].json_name for name in required]
        schema["description"] = (
            "proto3 JSON: fields may also be spelled with their proto names "
            "(event_name for eventName); unknown fields are refused with 400."
        )
    else:
        schema["required"] = list(properties)
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """proto3 JSON reads ``null`` as the field's default value."""
    if "oneOf" in schema:
        return {**schema, "oneOf": [*schema["oneOf"], {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


_LIMITS = DEFAULT_LIMITS
# Not blank (some non-space character) and no control characters.
_TEXT = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_NAME = {"minLength": 1, "maxLength": _LIMITS.max_name_chars, "pattern": _TEXT}
_ID = {"maxLength": _LIMITS.max_id_chars, "pattern": "^[\\x21-\\x7e]*$"}


def _schemas() -> dict[str, Any]:
    fv = {
        "type": "object",
        "required": ["field", "description"],
        "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
    }
    return {
        "TrackEventRequest": _message_schema(
            analytics_pb2.TrackEventRequest.DESCRIPTOR,
            request=True,
            required=("event_name",),
            extra={
                "event_name": {**_NAME, "description": "required, not blank"},
                "user_id": {
                    "maxLength": _LIMITS.max_name_chars,
                    "pattern": f"^$|{_TEXT}",
                    "description": "empty, or not blank",
                },
                "timestamp": {"description": _TIMESTAMP_DOC},
                "properties": {
                    "maxProperties": _LIMITS.max_properties,
                    "propertyNames": {"minLength": 1, "maxLength": _LIMITS.max_name_chars},
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": _LIMITS.max_value_chars,
                    },
                    "description": f"string to string; the encoded event may be at most "
                    f"{_LIMITS.max_event_bytes} bytes",
                },
                "event_id": {
                    **_ID,
                    "description": "idempotency key; assigned (UUIDv7) when empty",
                },
            },
        ),
        # A batch takes any event that maps onto TrackEventRequest: events that
        # break a rule are reported in the 200 reply, not refused with 400.
        "BatchEvent": _message_schema(analytics_pb2.TrackEventRequest.DESCRIPTOR, request=True),
        "TrackEventResponse": _message_schema(
            analytics_pb2.TrackEventResponse.DESCRIPTOR, request=False
        ),
        "BatchRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "analytics.EventBatch in proto3 JSON",
            "properties": {
                "sequence": {
                    **_nullable(dict(_INT64_IN)),
                    "description": "chosen by the client; echoed in the reply",
                },
                "events": {
                    "type": ["array", "null"],
                    "maxItems": MAX_BATCH_EVENTS,
                    "items": {"$ref": "#/components/schemas/BatchEvent"},
                },
            },
        },
        "BatchResponse": {
            "type": "object",
            "description": "analytics.IngestAck in proto3 JSON, the gRPC batch RPCs' reply",
            "required": ["sequence", "accepted", "duplicates", "rejected", "rejections"],
            "properties": {
                "sequence": {**_INT64_OUT, "description": "the request's sequence"},
                "accepted": {"type": "integer", "minimum": 0, "description": "newly stored"},
                "duplicates": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "valid events whose eventId was already stored",
                },
                "rejected": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "invalid events, not stored",
                },
                "rejections": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "eventId", "violations"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "eventId": {"type": "string"},
                            "violations": {"type": "array", "items": fv},
                        },
                    },
                },
            },
        },
        "CountEventsResponse": _message_schema(
            analytics_pb2.CountEventsResponse.DESCRIPTOR, request=False
        ),
        "AlertRequest": _message_schema(
            telemetry_pb2.AlertRequest.DESCRIPTOR,
            request=True,
            required=("device_id", "alert_type"),
            extra={
                "device_id": _NAME,
                "alert_type": {**_NAME, "maxLength": _LIMITS.max_alert_type_chars},
                "timestamp": {"description": _TIMESTAMP_DOC},
                "idempotency_key": {
                    **_ID,
                    "description": "a retry with the same key gets the first trackingId",
                },
            },
        ),
        "AlertResponse": _message_schema(telemetry_pb2.AlertResponse.DESCRIPTOR, request=False),
        "Alert": _message_schema(telemetry_pb2.Alert.DESCRIPTOR, request=False),
        **read_schemas(lambda descriptor: _message_schema(descriptor, request=False)),
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"enum": ["SERVING", "NOT_SERVING"]}},
        },
        "Status": {
            "type": "object",
            "description": "google.rpc.Status: code is the gRPC status code",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "integer", "minimum": 0, "maximum": 16},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["@type"],
                        "properties": {
                            "@type": {"type": "string"},
                            "fieldViolations": {"type": "array", "items": fv},
                            "retryDelay": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _json(ref: str, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    }
    out["description"] = description or ref
    return out


def _errors(*statuses: str) -> dict[str, Any]:
    meaning = {
        "400": "invalid request (google.rpc.BadRequest details name the fields)",
        "404": "not found",
        "413": "request body too large",
        "415": "content type is not application/json",
        "429": "ingest queue full; retry after Retry-After seconds",
        "500": "internal error; the message carries a request id",
        "503": "storage unavailable or server shutting down",
    }
    out = {code: _json("Status", meaning[code]) for code in statuses}
    if "429" in out:
        out["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "whole seconds"}
        }
    out["default"] = _json("Status", "any other error, as google.rpc.Status")
    return out


_WRITE_ERRORS: Final = ("400", "413", "415", "429", "500", "503")


def openapi_document() -> dict[str, Any]:
    def body(ref: str) -> dict[str, Any]:
        return {"required": True, **_json(ref)}

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "eventwire JSON/HTTP gateway",
            "version": _version,
            "description": "The gRPC API of eventwire over JSON/HTTP (proto3 JSON mapping). "
            "Errors are google.rpc.Status objects on the HTTP status of the standard "
            "gRPC mapping.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "trackEvent",
                    "summary": "Store one event (AnalyticsService.TrackEvent)",
                    "requestBody": body("TrackEventRequest"),
                    "responses": {
                        "200": _json("TrackEventResponse", "committed (or a duplicate)"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/events:batch": {
                "post": {
                    "operationId": "trackEvents",
                    "summary": "Store many events; invalid ones are rejected, valid ones stored",
                    "requestBody": body("BatchRequest"),
                    "responses": {
                        "200": _json("BatchResponse", "valid events committed"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/events:count": {
                "get": {
                    "operationId": "countEvents",
                    "summary": "Count stored events (AnalyticsService.CountEvents)",
                    "parameters": [
                        _query("event_name", {"type": "string"}, "exact event name"),
                        _query("user_id", {"type": "string"}, "exact user id"),
                        _query(
                            "start",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                            "inclusive lower bound on timestamp (ms); 0 = none",
                        ),
                        _query(
                            "end",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                            "exclusive upper bound on timestamp (ms); 0 = none",
                        ),
                    ],
                    "responses": {
                        "200": _json("CountEventsResponse"),
                        **_errors("400", "500", "503"),
                    },
                }
            },
            "/v1/alerts": {
                "post": {
                    "operationId": "reportAlert",
                    "summary": "Store one alert (TelemetryService.ReportAlert)",
                    "requestBody": body("AlertRequest"),
                    "responses": {
                        "200": _json("AlertResponse", "committed"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/alerts/{tracking_id}": {
                "get": {
                    "operationId": "getAlert",
                    "summary": "Read one alert (TelemetryService.GetAlert)",
                    "parameters": [
                        {
                            "name": "tracking_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                        }
                    ],
                    "responses": {
                        "200": _json("Alert"),
                        **_errors("400", "404", "500", "503"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "liveness",
                    "summary": "Liveness: 200 while the process serves HTTP",
                    "responses": {"200": _json("Health")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readiness",
                    "summary": "Readiness, mirroring grpc.health.v1 (503 while storage is down "
                    "or the server drains)",
                    "responses": {
                        "200": _json("Health", "serving"),
                        "503": _json("Health", "not serving"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": _schemas()},
    }
    for path, operations in read_operations(_json, _errors("400", "500", "503")).items():
        document["paths"].setdefault(path, {}).update(operations)
    return document


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
