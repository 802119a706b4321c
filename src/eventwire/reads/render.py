"""Stored rows as the JSON the gateway returns for them, without the cursor.

An event renders as an ``ExportedEvent`` (``{"event": {...}, "receivedAt": ...}``),
an alert as an ``Alert``: proto3 JSON with every field printed, int64 as
decimal strings and the severity by name, exactly what
``json_format.MessageToDict(..., always_print_fields_with_no_presence=True)``
gives for the same message (a unit test pins that they agree). Built directly
because the destinations render every committed row: json_format walks
descriptors in Python, about ten times the cost; the stored properties and
attributes (already JSON objects) are spliced in as they are.
"""

from __future__ import annotations

from typing import Final

import orjson

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.store.base import AlertRow, EventRow

_SEVERITY: Final[dict[int, str]] = {int(n): name for name, n in telemetry_pb2.Severity.items()}


def event_json(row: EventRow) -> bytes:
    """The event as ``ExportEvents`` returns it on the gateway, cursor left out."""
    return orjson.dumps(
        {
            "event": {
                "eventName": row.event_name,
                "userId": row.user_id,
                "timestamp": str(row.timestamp),
                "properties": orjson.Fragment(row.properties),
                "eventId": row.event_id,
            },
            "receivedAt": str(row.received_at),
        }
    )


def alert_json(row: AlertRow) -> bytes:
    """The alert as ``GetAlert`` returns it on the gateway, cursor left out."""
    return orjson.dumps(
        {
            "trackingId": row.tracking_id,
            "deviceId": row.device_id,
            "alertType": row.alert_type,
            "timestamp": str(row.timestamp),
            "receivedAt": str(row.received_at),
            "severity": _SEVERITY.get(row.severity, row.severity),
            "message": row.message,
            "attributes": orjson.Fragment(row.attributes),
        }
    )


def exported_event(row: EventRow, cursor: str) -> analytics_pb2.ExportedEvent:
    """The event as ``ExportEvents`` streams it on gRPC."""
    return analytics_pb2.ExportedEvent(
        event=analytics_pb2.TrackEventRequest(
            event_name=row.event_name,
            user_id=row.user_id,
            timestamp=row.timestamp,
            properties=orjson.loads(row.properties) if row.properties != "{}" else None,
            event_id=row.event_id,
        ),
        cursor=cursor,
        received_at=row.received_at,
    )
