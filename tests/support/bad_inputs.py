"""Bad requests and the violation each must produce, shared by every front door.

Each case names the RPC, the request as a proto3 field dict (json_format
accepts it, and so does the gateway's JSON), the field the first violation must
name, and a fragment its description must contain.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

NOW_MS = time.time_ns() // 1_000_000
DAY_MS = 86_400_000


class BadInput(NamedTuple):
    id: str
    method: str
    """``TrackEvent``, ``ReportAlert``, ``CountEvents`` or ``GetAlert``."""
    request: dict[str, Any]
    field: str
    fragment: str


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_name": "signup", **fields}


def _alert(**fields: Any) -> dict[str, Any]:
    return {"device_id": "dev-1", "alert_type": "overheat", **fields}


CASES: list[BadInput] = [
    BadInput("event_name-empty", "TrackEvent", _event(event_name=""), "event_name", "empty"),
    BadInput("event_name-blank", "TrackEvent", _event(event_name="  \t"), "event_name", "blank"),
    BadInput("event_name-long", "TrackEvent", _event(event_name="e" * 257), "event_name", "256"),
    BadInput(
        "event_name-control", "TrackEvent", _event(event_name="a\nb"), "event_name", "control"
    ),
    BadInput(
        "event_name-zero-width-space",
        "TrackEvent",
        _event(event_name="sign\u200bup"),
        "event_name",
        "U+200B ZERO WIDTH SPACE (an invisible format character), found at index 4",
    ),
    BadInput(
        "event_name-line-separator",
        "TrackEvent",
        _event(event_name="sign\u2028up"),
        "event_name",
        "U+2028 LINE SEPARATOR (a line separator), found at index 4",
    ),
    BadInput(
        "event_name-lone-joiner",
        "TrackEvent",
        _event(event_name="\u200dsignup"),
        "event_name",
        "U+200D ZERO WIDTH JOINER (an invisible format character), found at index 0",
    ),
    BadInput("user_id-long", "TrackEvent", _event(user_id="u" * 257), "user_id", "256"),
    BadInput(
        "user_id-paragraph-separator",
        "TrackEvent",
        _event(user_id="u\u2029"),
        "user_id",
        "U+2029 PARAGRAPH SEPARATOR (a paragraph separator), found at index 1",
    ),
    BadInput(
        "user_id-byte-order-mark",
        "TrackEvent",
        _event(user_id="\ufeffu-1"),
        "user_id",
        "U+FEFF ZERO WIDTH NO-BREAK SPACE (an invisible format character), found at index 0",
    ),
    BadInput("user_id-blank", "TrackEvent", _event(user_id="   "), "user_id", "blank"),
    BadInput(
        "timestamp-seconds-1999",
        "TrackEvent",
        _event(timestamp=946_684_799),
        "timestamp",
        "as seconds before 2000-01-01",
    ),
    BadInput(
        "timestamp-micros-future",
        "TrackEvent",
        _event(timestamp=(NOW_MS + 2 * DAY_MS) * 1000),
        "timestamp",
        "as microseconds too far ahead",
    ),
    BadInput(
        "timestamp-nanos-future",
        "TrackEvent",
        _event(timestamp=(NOW_MS + 2 * DAY_MS) * 1_000_000),
        "timestamp",
        "as nanoseconds too far ahead",
    ),
    BadInput("timestamp-negative", "TrackEvent", _event(timestamp=-5), "timestamp", "milliseconds"),
    BadInput(
        "timestamp-future",
        "TrackEvent",
        _event(timestamp=NOW_MS + 2 * DAY_MS),
        "timestamp",
        "milliseconds",
    ),
    BadInput("event_id-space", "TrackEvent", _event(event_id="a b"), "event_id", "printable"),
    BadInput("event_id-long", "TrackEvent", _event(event_id="x" * 129), "event_id", "128"),
    BadInput(
        "properties-too-many",
        "TrackEvent",
        _event(properties={f"k{i}": "v" for i in range(256)}),
        "properties",
        "255",
    ),
    BadInput(
        "property-empty-key",
        "TrackEvent",
        _event(properties={"": "v"}),
        "properties['']",
        "key",
    ),
    BadInput(
        "property-long-key",
        "TrackEvent",
        _event(properties={"k" * 257: "v"}),
        "properties['" + "k" * 40 + "...']",
        "key",
    ),
    BadInput(
        "property-long-value",
        "TrackEvent",
        _event(properties={"plan": "v" * 8193}),
        "properties['plan']",
        "8192",
    ),
    BadInput(
        "property-control-key",
        "TrackEvent",
        _event(properties={"a\tb": "v"}),
        "properties['a\\tb']",
        "control",
    ),
    BadInput(
        "property-soft-hyphen-key",
        "TrackEvent",
        _event(properties={"pl\u00adan": "pro"}),
        "properties['pl\\xadan']",
        "key must not contain U+00AD SOFT HYPHEN (an invisible format character), found at index 2",
    ),
    BadInput(
        "property-nul-value",
        "TrackEvent",
        _event(properties={"note": "a\x00b"}),
        "properties['note']",
        "NUL",
    ),
    BadInput(
        "event-too-large",
        "TrackEvent",
        _event(properties={f"k{i}": "v" * 8000 for i in range(5)}),
        "request",
        "32768 bytes",
    ),
    BadInput("device_id-empty", "ReportAlert", _alert(device_id=""), "device_id", "empty"),
    BadInput("alert_type-empty", "ReportAlert", _alert(alert_type=" "), "alert_type", "empty"),
    BadInput("alert_type-long", "ReportAlert", _alert(alert_type="t" * 129), "alert_type", "128"),
    BadInput(
        "alert-timestamp-seconds-future",
        "ReportAlert",
        _alert(timestamp=NOW_MS // 1000 + 2 * DAY_MS // 1000),
        "timestamp",
        "as seconds too far ahead",
    ),
    BadInput(
        "device_id-next-line",
        "ReportAlert",
        _alert(device_id="dev\x851"),
        "device_id",
        "U+0085 (a control character), found at index 3",
    ),
    BadInput(
        "alert_type-bidi-override",
        "ReportAlert",
        _alert(alert_type="\u202eheat"),
        "alert_type",
        "U+202E RIGHT-TO-LEFT OVERRIDE (an invisible format character), found at index 0",
    ),
    BadInput(
        "idempotency_key-non-ascii",
        "ReportAlert",
        _alert(idempotency_key="clé"),
        "idempotency_key",
        "printable",
    ),
    BadInput("count-start-negative", "CountEvents", {"start": -1}, "start", ">= 0"),
    BadInput(
        "get-alert-zero-width",
        "GetAlert",
        {"tracking_id": "a\u200bb"},
        "tracking_id",
        "printable ASCII without spaces; got U+200B ZERO WIDTH SPACE at index 1",
    ),
    BadInput("get-alert-empty", "GetAlert", {"tracking_id": ""}, "tracking_id", "empty"),
]
