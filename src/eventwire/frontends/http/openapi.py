"""The OpenAPI 3.1 document of the JSON/HTTP gateway, served at ``/openapi.json``.

Message schemas are derived from the protobuf descriptors, so they cannot drift
from the contract: proto3 JSON names (lowerCamelCase), 64-bit integers as
strings in replies (and string or number in requests), every field printed in
replies. Every rule the server enforces that a schema can state is stated
exactly, generated from the validator's own definitions: lengths, the name
pattern (no invisible characters), int64 ranges, and the timestamp window per
unit, as numbers (the window's end moves once an hour, so the document is
rebuilt when it does; see ``latest_timestamp_ms``). What no schema can state
(the 32 KiB encoded-event limit, the body limit) is in the descriptions.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from eventwire._version import __version__ as _version
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.errors import HTTP_ONLY, HTTP_STATUS
from eventwire.frontends.http.openapi_reads import read_operations, read_schemas
from eventwire.ingest.alerts import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_CHARS,
)
from eventwire.ingest.service import MAX_BATCH_EVENTS, now_ms
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    Limits,
    blank_pattern,
    name_pattern,
    timestamp_ranges,
)

_INT64_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def decimal_pattern(low: int, high: int) -> str:
    """A regular expression matching exactly the canonical decimals (no sign but a
    leading minus, no leading zero) of the integers ``low`` to ``high``."""
    alternatives: list[str] = []
    if low < 0:
        alternatives += [f"-{a}" for a in _nonnegative(max(1, -high), -low)]
    if high >= 0:
        alternatives += _nonnegative(max(0, low), high)
    return "^(?:" + "|".join(alternatives) + ")$"


def _nonnegative(low: int, high: int) -> list[str]:
    out: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(high, 10**digits - 1)
        if a <= b:
            out += _same_length(str(a), str(b))
    return out


def _same_length(a: str, b: str) -> list[str]:
    """Alternatives matching the digit strings from ``a`` to ``b`` (same length)."""
    if a == b:
        return [a]
    common = 0
    while a[common] == b[common]:
        common += 1
    prefix, a, b = a[:common], a[common:], b[common:]
    rest = len(a) - 1
    tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" if rest == 1 else ""
    if not rest:
        return [f"{prefix}[{a}-{b}]"]
    out: list[str] = []
    first, last = int(a[0]), int(b[0])
    if a[1:] == "0" * rest:
        first -= 1  # a's whole block joins the middle
    else:
        out += [prefix + a[0] + x for x in _same_length(a[1:], "9" * rest)]
    full_last = b[1:] == "9" * rest
    middle_end = last if full_last else last - 1
    if first + 1 <= middle_end:
        digit = str(first + 1) if first + 1 == middle_end else f"[{first + 1}-{middle_end}]"
        out.append(prefix + digit + tail)
    if not full_last:
        out += [prefix + b[0] + x for x in _same_length("0" * rest, b[1:])]
    return out


def _int64(low: int = INT64_MIN, high: int = INT64_MAX) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": decimal_pattern(low, high)},
        ],
        "description": "64-bit integer: a JSON number or a decimal string",
    }


_INT64_OUT: Final = {
    "type": "string",
    "pattern": "^-?[0-9]+$",
    "description": "64-bit integer, written as a decimal string (proto3 JSON mapping)",
}


def _timestamp(limits: Limits, at_ms: int) -> dict[str, Any]:
    ranges = timestamp_ranges(at_ms, limits.max_future_ms)
    forms: list[dict[str, Any]] = [{"const": 0}, {"const": "0"}]
    for r in ranges:
        forms.append({"type": "integer", "minimum": r.low, "maximum": r.high})
        forms.append({"type": "string", "pattern": decimal_pattern(r.low, r.high)})
    latest = ranges[1].high
    table = "; ".join(f"{r.unit} {r.low} to {r.high}" for r in ranges)
    return {
        "anyOf": forms,
        "description": (
            "Unix epoch time in seconds, milliseconds, microseconds or nanoseconds, told apart "
            "by magnitude and stored as milliseconds; 0 means now (server receive time). "
            f"Accepted: {table}: 2000-01-01 to {latest} ms, that is "
            f"{limits.max_future_ms // 3_600_000} hours past the server's clock rounded up to "
            "the hour (the bound moves once an hour; this document states it as it stands)."
        ),
    }


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
            # proto3 JSON takes an enum by name or by number; the gateway takes
            # only the exact names, and the validators only the defined numbers.
            numbers = [value.number for value in field.enum_type.values]
            return {"oneOf": [{"enum": names}, {"enum": numbers}]}
        return {"enum": names}
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    if field.type in _INT64_TYPES:
        return _int64() if request else dict(_INT64_OUT)
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
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    if "type" not in schema:  # a $ref, an enum, a oneOf
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


_NAME_DOC: Final = (
    "a name: not blank, no invisible character (Unicode Cc, Cf, Zl, Zp: controls, "
    "U+200B, U+2028 ...) but zero-width joiners between visible characters and emoji "
    "tag sequences"
)


def _schemas(limits: Limits, at_ms: int) -> dict[str, Any]:
    # "not" a string of spaces only: null (an absent optional field) stays valid.
    text = {"pattern": name_pattern(), "not": {"type": "string", "pattern": blank_pattern()}}
    name = {"minLength": 1, "maxLength": limits.max_name_chars, **text}
    ident = {"maxLength": limits.max_id_chars, "pattern": "^[\\x21-\\x7e]*$"}
    timestamp = _timestamp(limits, at_ms)
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
                "event_name": {**name, "description": _NAME_DOC},
                "user_id": {
                    "maxLength": limits.max_name_chars,
                    **text,
                    "description": "empty, or a name as eventName",
                },
                "timestamp": timestamp,
                "properties": {
                    "maxProperties": limits.max_properties,
                    "propertyNames": {
                        "minLength": 1,
                        "maxLength": limits.max_name_chars,
                        "pattern": name_pattern(),
                    },
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": limits.max_value_chars,
                        "pattern": "^[^\\x00]*$",
                    },
                    "description": f"string to string; the encoded event may be at most "
                    f"{limits.max_event_bytes} bytes",
                },
                "event_id": {
                    **ident,
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
                    **_nullable(_int64()),
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
                "device_id": {**name, "description": _NAME_DOC},
                "alert_type": {**name, "maxLength": limits.max_alert_type_chars},
                "timestamp": timestamp,
                "idempotency_key": {
                    **ident,
                    "description": "a retry with the same key gets the first trackingId",
                },
                "message": {
                    "maxLength": MAX_MESSAGE_CHARS,
                    "pattern": "^[^\\x00]*$",
                    "description": "free text; newlines allowed, NUL not",
                },
                "attributes": {
                    "maxProperties": MAX_ATTRIBUTES,
                    "propertyNames": {
                        "minLength": 1,
                        "maxLength": MAX_ATTRIBUTE_KEY_CHARS,
                        "pattern": "^[^\\x00-\\x1f\\x7f]*$",
                    },
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": MAX_ATTRIBUTE_VALUE_CHARS,
                        "pattern": "^[^\\x00]*$",
                    },
                    "description": "string to string: keys without control characters, "
                    "values without NUL",
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
        "405": "method not allowed (the Allow header lists the methods)",
        "408": "request head or body not received in time",
        "413": "request body too large (declared or sent)",
        "415": "content type is not application/json",
        "429": "ingest queue full or rate limit reached; retry after Retry-After seconds",
        "431": "request line and headers too large",
        "500": "internal error; the message carries a request id",
        "503": "storage unavailable, server shutting down, or too many connections",
    }
    out: dict[str, Any] = {}
    for status in statuses:
        code = HTTP_ONLY.get(int(status)) or next(
            c for c, http in HTTP_STATUS.items() if http == int(status)
        )
        out[status] = _json("Status", f"{meaning[status]}; code {int(code)} ({code.name})")
    if "429" in out:
        out["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "whole seconds"}
        }
    out["default"] = _json("Status", "any other error, as google.rpc.Status")
    return out


# Every operation may meet these: the HTTP layer answers them before any route.
_ANY: Final = ("408", "413", "431", "503")
_WRITE_ERRORS: Final = ("400", "415", "429", "500", *_ANY)
_HEAD: Final = {"description": "the headers GET would send, no body"}


def _get(operation: dict[str, Any]) -> dict[str, Any]:
    """A GET operation and its HEAD twin (the same headers, no body)."""
    head = {
        **{k: v for k, v in operation.items() if k != "responses"},
        "operationId": operation["operationId"] + "Head",
        "summary": "Headers of: " + operation["summary"],
        "responses": {status: _HEAD for status in operation["responses"]},
    }
    return {"get": operation, "head": head}


def openapi_document(limits: Limits = DEFAULT_LIMITS, at_ms: int | None = None) -> dict[str, Any]:
    """The document as of ``at_ms`` (default: now), which fixes the timestamp window."""
    at_ms = now_ms() if at_ms is None else at_ms

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, **_json(ref)}

    tracking_id = {
        "name": "tracking_id",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": limits.max_id_chars,
            "pattern": "^[\\x21-\\x7e]+$",
        },
    }
    bound = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
    filter_name = {"type": "string", "maxLength": limits.max_name_chars, "pattern": name_pattern()}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "eventwire JSON/HTTP gateway",
            "version": _version,
            "description": "The gRPC API of eventwire over JSON/HTTP (proto3 JSON mapping). "
            "Errors are google.rpc.Status objects on the HTTP status of the standard "
            "gRPC mapping; errors only HTTP has carry the code gRPC gives the same "
            "condition (413 and 431: RESOURCE_EXHAUSTED). Request bodies are JSON objects "
            "in UTF-8 without repeated keys, at most "
            "the server's --http-max-body-bytes (4 MiB by default); one encoded event at "
            f"most {limits.max_event_bytes} bytes.",
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
            "/v1/events:count": _get(
                {
                    "operationId": "countEvents",
                    "summary": "Count stored events (AnalyticsService.CountEvents)",
                    "parameters": [
                        _query("event_name", filter_name, "exact event name"),
                        _query("user_id", filter_name, "exact user id"),
                        _query(
                            "start",
                            bound,
                            "inclusive lower bound on timestamp, in any unit a timestamp "
                            "takes; 0 = none",
                        ),
                        _query(
                            "end",
                            bound,
                            "exclusive upper bound on timestamp, in any unit a timestamp "
                            "takes; 0 = none. An end at or before start counts 0.",
                        ),
                    ],
                    "responses": {
                        "200": _json("CountEventsResponse"),
                        **_errors("400", "429", "500", *_ANY),
                    },
                }
            ),
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
            "/v1/alerts/{tracking_id}": _get(
                {
                    "operationId": "getAlert",
                    "summary": "Read one alert (TelemetryService.GetAlert)",
                    "parameters": [tracking_id],
                    "responses": {
                        "200": _json("Alert"),
                        **_errors("400", "404", "429", "500", *_ANY),
                    },
                }
            ),
            "/healthz": _get(
                {
                    "operationId": "liveness",
                    "summary": "Liveness: 200 while the process serves HTTP",
                    "responses": {"200": _json("Health"), **_errors(*_ANY)},
                }
            ),
            "/readyz": _get(
                {
                    "operationId": "readiness",
                    "summary": "Readiness, mirroring grpc.health.v1 (503 while storage is down "
                    "or the server drains)",
                    "responses": {
                        "200": _json("Health", "serving"),
                        "503": _json("Health", "not serving"),
                        **{k: v for k, v in _errors(*_ANY).items() if k != "503"},
                    },
                }
            ),
            "/openapi.json": _get(
                {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(*_ANY),
                    },
                }
            ),
        },
        "components": {"schemas": _schemas(limits, at_ms)},
    }
    for path, operations in read_operations(_json, _errors("400", "500", *_ANY), limits).items():
        document["paths"].setdefault(path, {}).update(_get(operations["get"]))
    return document


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
