"""Validation of the read requests: pure functions to field violations."""

from __future__ import annotations

from typing import Final

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.alerts import CONTROL_CHARS, check_severity
from eventwire.ingest.validation import DEFAULT_LIMITS, check_filter_name

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
DEFAULT_QUERY_LIMIT: Final = 1000
MAX_QUERY_LIMIT: Final = 10_000
MAX_PROPERTY_KEY_CHARS: Final = 256

BUCKETS: Final = frozenset(analytics_pb2.Bucket.values())
BUCKET_MS: Final = {
    analytics_pb2.BUCKET_NONE: 0,
    analytics_pb2.BUCKET_MINUTE: 60_000,
    analytics_pb2.BUCKET_HOUR: 3_600_000,
    analytics_pb2.BUCKET_DAY: 86_400_000,
}
GROUP_BY_PROPERTY: Final = "properties."
_GROUP_COLUMNS: Final = frozenset({"", "event_name", "user_id"})


def _time_range(out: list[FieldViolation], start: int, end: int) -> None:
    if start < 0:
        out.append(FieldViolation("start", f"must be epoch milliseconds >= 0, got {start}"))
    if end < 0:
        out.append(FieldViolation("end", f"must be epoch milliseconds >= 0, got {end}"))
    if start > 0 and end > 0 and start >= end:
        out.append(FieldViolation("end", f"must be greater than start ({start}), got {end}"))


def _how_many(out: list[FieldViolation], field: str, value: int, most: int, default: int) -> None:
    """A count a client may ask for: 1 to ``most``, or 0 for ``default``."""
    if not 0 <= value <= most:
        out.append(FieldViolation(field, f"must be 1 to {most} (0 for {default}), got {value}"))


def _alert_filter(out: list[FieldViolation], device_id: str, alert_type: str) -> None:
    check_filter_name(out, "device_id", device_id)
    check_filter_name(out, "alert_type", alert_type, DEFAULT_LIMITS.max_alert_type_chars)


def validate_list_alerts(req: telemetry_pb2.ListAlertsRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _alert_filter(out, req.device_id, req.alert_type)
    check_severity(out, "min_severity", req.min_severity)
    _time_range(out, req.start, req.end)
    _how_many(out, "page_size", req.page_size, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
    return out


def validate_watch_alerts(req: telemetry_pb2.WatchAlertsRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _alert_filter(out, req.device_id, req.alert_type)
    check_severity(out, "min_severity", req.min_severity)
    if req.after and req.from_start:
        out.append(FieldViolation("from_start", "must be false when after is set"))
    return out


def validate_query(req: analytics_pb2.QueryEventsRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    check_filter_name(out, "event_name", req.event_name)
    _time_range(out, req.start, req.end)
    if req.bucket not in BUCKETS:
        out.append(FieldViolation("bucket", f"must be a Bucket value, got {req.bucket}"))
    group_by = req.group_by
    if group_by.startswith(GROUP_BY_PROPERTY):
        key = group_by.removeprefix(GROUP_BY_PROPERTY)
        if not key or len(key) > MAX_PROPERTY_KEY_CHARS or CONTROL_CHARS.search(key):
            out.append(
                FieldViolation(
                    "group_by",
                    f"properties.<key> needs a key of 1 to {MAX_PROPERTY_KEY_CHARS} characters",
                )
            )
    elif group_by not in _GROUP_COLUMNS:
        out.append(
            FieldViolation(
                "group_by",
                f"must be empty, event_name, user_id or properties.<key>, got {group_by[:64]!r}",
            )
        )
    _how_many(out, "limit", req.limit, MAX_QUERY_LIMIT, DEFAULT_QUERY_LIMIT)
    return out


def validate_export(req: analytics_pb2.ExportEventsRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    check_filter_name(out, "event_name", req.event_name)
    _time_range(out, req.start, req.end)
    return out


def validate_tail(event_name: str, user_id: str) -> list[FieldViolation]:
    """The console's live tail: its two optional filters."""
    out: list[FieldViolation] = []
    check_filter_name(out, "event_name", event_name)
    check_filter_name(out, "user_id", user_id)
    return out
