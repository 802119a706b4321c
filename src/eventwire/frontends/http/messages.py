"""JSON values to the protobuf requests the service takes, and replies back to JSON.

``google.protobuf.json_format`` does the mapping, unknown fields refused; what
it is lax about (a field named twice, int64 strings int() would take, enum
values it truncates) is refused here first, and plainly shaped events take a
fast path through the protobuf constructor.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.errors import HttpError

M = TypeVar("M", bound=Message)

_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
"""An int64 as a JSON string: canonical decimal, as the API document states it."""
INT64_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
"""The fields proto3 JSON carries as decimal strings (the API document says so too)."""


INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
SEVERITY_NAMES: Final = frozenset(telemetry_pb2.Severity.keys())
SEVERITY_RULE: Final = (
    "a Severity name (" + ", ".join(telemetry_pb2.Severity.keys()) + ") or its number, an integer"
)


def enum_value(value: object, names: frozenset[str]) -> bool:
    """Whether ``value`` is an enum the way proto3 JSON spells one: an exact
    name, or an integer (the validators then check it is a defined number).

    json_format is laxer: it takes a bool for a number, truncates 1.5 to 1 and
    2**32 + 2 to 2, and reads a string through int(), so "1", " 1" and
    Arabic-Indic digits pass. An integral float (1.0) is an integer in JSON
    Schema, so it is taken.
    """
    if isinstance(value, str):
        return value in names
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer() and INT32_MIN <= value <= INT32_MAX
    return (isinstance(value, int) and INT32_MIN <= value <= INT32_MAX) or value is None


def to_json(msg: Message) -> bytes:
    # Every field is printed, defaults included, so a client never has to know
    # proto3's "absent means zero" rule to read a reply.
    return orjson.dumps(json_format.MessageToDict(msg, always_print_fields_with_no_presence=True))


def parse_into(obj: object, msg: M, what: str) -> M:
    if not isinstance(obj, dict):
        raise HttpError(400, f"{what} must be a JSON object")
    # proto3 JSON names each field twice (event_name, eventName); json_format
    # takes both and keeps one, which is the duplicate-key ambiguity again.
    fields = msg.DESCRIPTOR.fields_by_name
    prefix = "" if what in ("request body", "body") else f"{what}."
    seen: dict[str, str] = {}
    for key in obj:
        field = fields.get(key) or msg.DESCRIPTOR.fields_by_camelcase_name.get(key)
        if field is None:
            continue
        if field.name in seen:
            raise HttpError(
                400,
                f"{what} sets {field.name} twice, as {seen[field.name]!r} and {key!r}",
                violations=[FieldViolation(prefix + key, "duplicate key")],
            )
        seen[field.name] = key
        if field.type in INT64_TYPES:
            value = obj[key]
            if isinstance(value, str) and not _DECIMAL.fullmatch(value):
                # json_format would take int()'s liberties: "+5", " 5", "1_000", "٣".
                raise HttpError(
                    400,
                    f"{what}: {key} must be an integer or a decimal string, got {value!r}",
                    violations=[
                        FieldViolation(prefix + key, "must be an integer or a decimal string")
                    ],
                )
    try:
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        # ParseError names the field; TypeError/ValueError come from values
        # protobuf's setters refuse (e.g. strings that are not valid UTF-8).
        # The first line names the offending field; the rest lists every field.
        reason = str(exc).split("\n", 1)[0]
        raise HttpError(400, f"{what} does not match {msg.DESCRIPTOR.name}: {reason}") from None
    return msg


# TrackEventRequest's fields by JSON name and by proto name, and which are maps
# (the constructor would take any iterable for those, an empty string included).
_EVENT_FIELDS: Final = {
    name: field.name
    for field in analytics_pb2.TrackEventRequest.DESCRIPTOR.fields
    for name in (field.name, field.json_name)
}
_EVENT_MAPS: Final = frozenset(
    field.name
    for field in analytics_pb2.TrackEventRequest.DESCRIPTOR.fields
    if field.message_type is not None and field.message_type.GetOptions().map_entry
)


def _plain_event(obj: object) -> analytics_pb2.TrackEventRequest | None:
    """``obj`` as a TrackEventRequest if it is plainly shaped, else None.

    json_format walks descriptors in Python, ~20 µs an event: most of what a
    JSON batch cost. What clients send (strings, an integer timestamp, a map
    of strings) goes to the protobuf constructor in C instead, which refuses
    wrong types itself (bools and floats for integers included). Anything else
    (unknown or repeated fields, nulls, numbers in strings, maps that are not
    objects, values protobuf refuses) returns None and goes through
    json_format, which words the error. A property test pins that they agree.
    """
    if type(obj) is not dict:
        return None
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        name = _EVENT_FIELDS.get(key)
        if name is None or name in fields or (name in _EVENT_MAPS) != (type(value) is dict):
            return None
        fields[name] = value
    try:
        return analytics_pb2.TrackEventRequest(**fields)
    except (TypeError, ValueError):
        return None


def parse_event(obj: object, what: str) -> analytics_pb2.TrackEventRequest:
    event = _plain_event(obj)
    if event is None:
        event = parse_into(obj, analytics_pb2.TrackEventRequest(), what)
    return event
