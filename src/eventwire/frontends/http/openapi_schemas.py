"""The OpenAPI document's message schemas, derived from the protobuf descriptors.

proto3 JSON names (lowerCamelCase), 64-bit integers as strings in replies (and
string or number in requests), every field printed in replies; every rule the
server enforces that a schema can state, generated from the validator's own
definitions: lengths, the name pattern, int64 ranges, and the timestamp window
per unit.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.decimal_patterns import decimal_pattern
from eventwire.frontends.http.messages import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    INT64_TYPES,
)
from eventwire.frontends.http.openapi_plans import plan_schemas
from eventwire.frontends.http.openapi_reads import read_schemas
from eventwire.ingest.alerts import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_CHARS,
)
from eventwire.ingest.plans_service import MAX_DOCUMENT_CHARS, MAX_FILTER_CHARS
from eventwire.ingest.service import MAX_BATCH_EVENTS
from eventwire.ingest.validation import (
    Limits,
    blank_pattern,
    name_pattern,
    timestamp_ranges,
)


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
        return {"type": "integer", "minimum": INT32_MIN, "maximum": INT32_MAX}
    if field.type in INT64_TYPES:
        return _int64() if request else dict(_INT64_OUT)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
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


def _plan_rules() -> dict[str, dict[str, dict[str, Any]]]:
    """What the plans service checks of its requests, as schema keywords."""
    since = {**_int64(0), "description": "Unix epoch ms; 0 = unbounded"}
    text = {"maxLength": MAX_FILTER_CHARS}
    document = {
        "minLength": 1,
        "maxLength": MAX_DOCUMENT_CHARS,
        "pattern": "\\S",
        "description": "the plan, YAML or JSON (docs/tracking-plans.md)",
    }
    return {
        "QuarantineFilter": {"since": since, "until": since, "event_name": text, "rule": text},
        "ApplyPlanRequest": {"document": document},
        "DiffPlanRequest": {"document": document},
    }


_NAME_DOC: Final = (
    "a name: not blank, no invisible character (Unicode Cc, Cf, Zl, Zp: controls, "
    "U+200B, U+2028 ...) but zero-width joiners between visible characters and emoji "
    "tag sequences"
)


def schemas(limits: Limits, at_ms: int) -> dict[str, Any]:
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
            "required": [
                "sequence",
                "accepted",
                "duplicates",
                "rejected",
                "rejections",
                "quarantined",
                "flagged",
                "planVersion",
            ],
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
                "quarantined": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "events the tracking plan stored apart, in the quarantine",
                },
                "flagged": {
                    "type": "array",
                    "description": "events the tracking plan found violations in (accepted "
                    "or quarantined), with their outcome; conforming events are not listed",
                    "items": {"$ref": "#/components/schemas/PlannedEvent"},
                },
                "planVersion": {
                    **_INT64_OUT,
                    "description": "the tracking plan version checked against; 0: none",
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
        **plan_schemas(
            lambda descriptor, request: _message_schema(
                descriptor, request=request, extra=_plan_rules().get(descriptor.name)
            )
        ),
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
