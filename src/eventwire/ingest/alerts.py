"""Alerts on the write side: their details checked, and a stored row as an Alert message."""

from __future__ import annotations

import re
from typing import Final

import orjson

from eventwire._errors import FieldViolation
from eventwire.api import telemetry_pb2
from eventwire.store.base import AlertRow

MAX_MESSAGE_CHARS: Final = 4096
MAX_ATTRIBUTES: Final = 64
MAX_ATTRIBUTE_KEY_CHARS: Final = 128
MAX_ATTRIBUTE_VALUE_CHARS: Final = 1024
SEVERITIES: Final = frozenset(telemetry_pb2.Severity.values())
CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")
"""What no key (an attribute's here, a property's in a read's ``group_by``) may hold."""


def check_severity(out: list[FieldViolation], field: str, value: int) -> None:
    if value not in SEVERITIES:
        known = ", ".join(f"{telemetry_pb2.Severity.Name(v)} ({v})" for v in sorted(SEVERITIES))
        out.append(FieldViolation(field, f"must be one of {known}, got {value}"))


def validate_alert_details(req: telemetry_pb2.AlertRequest) -> list[FieldViolation]:
    """The additive AlertRequest fields: severity, message and attributes."""
    out: list[FieldViolation] = []
    check_severity(out, "severity", req.severity)
    if len(req.message) > MAX_MESSAGE_CHARS:
        out.append(
            FieldViolation(
                "message", f"must be at most {MAX_MESSAGE_CHARS} characters, got {len(req.message)}"
            )
        )
    if "\x00" in req.message:
        out.append(FieldViolation("message", "must not contain NUL (U+0000)"))
    attributes = req.attributes
    if len(attributes) > MAX_ATTRIBUTES:
        out.append(
            FieldViolation(
                "attributes", f"must have at most {MAX_ATTRIBUTES} entries, got {len(attributes)}"
            )
        )
        return out
    for key, value in attributes.items():
        path = f"attributes[{key[:40]!r}]"
        if not key or len(key) > MAX_ATTRIBUTE_KEY_CHARS or CONTROL_CHARS.search(key):
            out.append(
                FieldViolation(
                    path,
                    f"key must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters without control "
                    "characters",
                )
            )
        if len(value) > MAX_ATTRIBUTE_VALUE_CHARS or "\x00" in value:
            out.append(
                FieldViolation(
                    path,
                    f"value must be at most {MAX_ATTRIBUTE_VALUE_CHARS} characters, without NUL",
                )
            )
    return out


def alert_message(row: AlertRow, cursor: str = "") -> telemetry_pb2.Alert:
    return telemetry_pb2.Alert(
        tracking_id=row.tracking_id,
        device_id=row.device_id,
        alert_type=row.alert_type,
        timestamp=row.timestamp,
        received_at=row.received_at,
        severity=telemetry_pb2.Severity.ValueType(row.severity),
        message=row.message,
        attributes=orjson.loads(row.attributes) if row.attributes != "{}" else None,
        cursor=cursor,
    )
