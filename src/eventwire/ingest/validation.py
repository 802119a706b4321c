"""Request validation: pure functions from a request to its field violations.

The limits follow what established analytics pipelines accept, so events that
work elsewhere work here (Segment: 32 KB per event; Mixpanel: fewer than 255
properties; GA4: names of at most 40 characters, which we relax to 256 because
server-side event names are often namespaced).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2, telemetry_pb2

MIN_TIMESTAMP_MS: Final = 946_684_800_000
"""2000-01-01T00:00:00Z in epoch milliseconds: anything earlier is taken for a unit mistake."""

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_name_chars: int = 256
    """event_name, user_id, device_id, property keys."""
    max_alert_type_chars: int = 128
    max_id_chars: int = 128
    """event_id, idempotency_key (printable ASCII)."""
    max_value_chars: int = 8192
    max_properties: int = 255
    max_event_bytes: int = 32 * 1024
    """Encoded size of one TrackEventRequest."""
    max_future_ms: int = 24 * 3600 * 1000
    """How far ahead of the server's clock a timestamp may be (clock skew allowance)."""
    max_violations: int = 20
    """Report at most this many violations per request, to bound the error's size."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


DEFAULT_LIMITS: Final = Limits()


def _check_timestamp(
    out: list[FieldViolation], field: str, value: int, now_ms: int, limits: Limits
) -> None:
    if value == 0:
        return
    high = now_ms + limits.max_future_ms
    if MIN_TIMESTAMP_MS <= value <= high:
        return
    hint = ""
    if MIN_TIMESTAMP_MS // 1000 <= value <= high // 1000:
        hint = " (this looks like seconds; multiply by 1000)"
    elif value > high and MIN_TIMESTAMP_MS * 1000 <= value <= high * 1000:
        hint = " (this looks like microseconds; divide by 1000)"
    out.append(
        FieldViolation(
            field,
            f"must be Unix epoch milliseconds between {MIN_TIMESTAMP_MS} (2000-01-01) and "
            f"{limits.max_future_ms // 3_600_000} hours past the server's clock, or 0 for now; "
            f"got {value}{hint}",
        )
    )


def _check_name(
    out: list[FieldViolation], field: str, value: str, max_chars: int, *, required: bool
) -> None:
    if not value.strip():
        if required:
            out.append(FieldViolation(field, "must not be empty or blank"))
        elif value:
            out.append(FieldViolation(field, "must not be blank (send it empty instead)"))
        return
    if len(value) > max_chars:
        out.append(
            FieldViolation(field, f"must be at most {max_chars} characters, got {len(value)}")
        )
    if _CONTROL.search(value):
        out.append(FieldViolation(field, "must not contain control characters"))


def _check_id(out: list[FieldViolation], field: str, value: str, limits: Limits) -> None:
    if not value:
        return
    if len(value) > limits.max_id_chars:
        out.append(
            FieldViolation(
                field, f"must be at most {limits.max_id_chars} characters, got {len(value)}"
            )
        )
    elif not _PRINTABLE_ASCII.fullmatch(value):
        out.append(FieldViolation(field, "must be printable ASCII without spaces"))


def _key_path(key: str) -> str:
    shown = key if len(key) <= 40 else key[:40] + "..."
    return f"properties[{shown!r}]"


def validate_event(
    req: analytics_pb2.TrackEventRequest,
    now_ms: int,
    limits: Limits = DEFAULT_LIMITS,
    prefix: str = "",
) -> list[FieldViolation]:
    """Every way ``req`` breaks the documented limits; empty when it is valid."""
    out: list[FieldViolation] = []
    _check_name(out, prefix + "event_name", req.event_name, limits.max_name_chars, required=True)
    _check_name(out, prefix + "user_id", req.user_id, limits.max_name_chars, required=False)
    _check_timestamp(out, prefix + "timestamp", req.timestamp, now_ms, limits)
    _check_id(out, prefix + "event_id", req.event_id, limits)
    props = req.properties
    if len(props) > limits.max_properties:
        out.append(
            FieldViolation(
                prefix + "properties",
                f"must have at most {limits.max_properties} entries, got {len(props)}",
            )
        )
    else:
        for key, value in props.items():
            if not key or len(key) > limits.max_name_chars:
                out.append(
                    FieldViolation(
                        prefix + _key_path(key),
                        f"key must be 1 to {limits.max_name_chars} characters, got {len(key)}",
                    )
                )
            elif _CONTROL.search(key):
                out.append(
                    FieldViolation(
                        prefix + _key_path(key), "key must not contain control characters"
                    )
                )
            # Values may hold newlines and tabs, but not NUL: PostgreSQL's JSONB
            # (and many consumers downstream) cannot store U+0000.
            if "\x00" in value:
                out.append(
                    FieldViolation(prefix + _key_path(key), "value must not contain NUL (U+0000)")
                )
            if len(value) > limits.max_value_chars:
                out.append(
                    FieldViolation(
                        prefix + _key_path(key),
                        f"value must be at most {limits.max_value_chars} characters, "
                        f"got {len(value)}",
                    )
                )
            if len(out) >= limits.max_violations:
                break
    size = req.ByteSize()
    if size > limits.max_event_bytes:
        out.append(
            FieldViolation(
                prefix.rstrip(".") or "request",
                f"encoded event must be at most {limits.max_event_bytes} bytes, got {size}",
            )
        )
    return out[: limits.max_violations]


def validate_alert(
    req: telemetry_pb2.AlertRequest, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _check_name(out, "device_id", req.device_id, limits.max_name_chars, required=True)
    _check_name(out, "alert_type", req.alert_type, limits.max_alert_type_chars, required=True)
    _check_timestamp(out, "timestamp", req.timestamp, now_ms, limits)
    _check_id(out, "idempotency_key", req.idempotency_key, limits)
    return out


def validate_count(req: analytics_pb2.CountEventsRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if req.start < 0:
        out.append(FieldViolation("start", f"must be epoch milliseconds >= 0, got {req.start}"))
    if req.end < 0:
        out.append(FieldViolation("end", f"must be epoch milliseconds >= 0, got {req.end}"))
    if req.start and req.end and req.end <= req.start:
        out.append(
            FieldViolation("end", f"must be greater than start ({req.start}), got {req.end}")
        )
    return out


def validate_tracking_id(tracking_id: str) -> list[FieldViolation]:
    if not tracking_id:
        return [FieldViolation("tracking_id", "must not be empty")]
    if len(tracking_id) > 128:
        return [FieldViolation("tracking_id", "must be at most 128 characters")]
    return []
