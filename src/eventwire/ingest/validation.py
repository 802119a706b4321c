"""Request validation: pure functions from a request to its field violations.

The limits follow what established analytics pipelines accept, so events that
work elsewhere work here (Segment: 32 KB per event; Mixpanel: fewer than 255
properties; GA4: names of at most 40 characters, which we relax to 256 because
server-side event names are often namespaced).

Two rules are about what clients actually send rather than sizes:

* Names (event names, user and device ids, alert types, property keys) may hold
  any letter, digit, symbol, emoji or inner space, but no invisible character
  that changes how text is split or shown (:mod:`eventwire.ingest.names`).
* ``timestamp`` has no unit in the seeds' contract, and clients fill it with
  whatever their language's clock gives (Go: ``time.Now().Unix()``, seconds).
  Seconds, milliseconds, microseconds and nanoseconds are told apart by
  magnitude (:func:`timestamp_ms`): their ranges of plausible values are
  disjoint by a factor of ~500, so no value is ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.names import (
    blank_pattern,
    describe_char,
    invisible_char,
    invisible_violation,
    name_pattern,
)

__all__ = [  # the name rules too: the API document and the tests read them from here
    "DEFAULT_LIMITS",
    "MIN_TIMESTAMP_MS",
    "WINDOW_STEP_MS",
    "Limits",
    "TimestampRange",
    "blank_pattern",
    "check_filter_name",
    "describe_char",
    "invisible_char",
    "latest_timestamp_ms",
    "name_pattern",
    "timestamp_ms",
    "timestamp_ranges",
    "timestamp_unit",
    "validate_alert",
    "validate_count",
    "validate_event",
    "validate_tracking_id",
]

MIN_TIMESTAMP_MS: Final = 946_684_800_000
"""2000-01-01T00:00:00Z in epoch milliseconds: anything earlier is taken for a mistake."""

WINDOW_STEP_MS: Final = 3_600_000
"""The latest accepted timestamp moves in whole hours (see :func:`latest_timestamp_ms`)."""

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")

# Upper bounds of each unit's magnitude band, read left to right: below 1e11
# is seconds (1e11 s is the year 5138), then milliseconds, microseconds, and
# nanoseconds up to int64's end (the year 2262).
_SECONDS_BELOW: Final = 100_000_000_000
_MILLIS_BELOW: Final = 100_000_000_000_000
_MICROS_BELOW: Final = 100_000_000_000_000_000


def timestamp_ms(value: int) -> int:
    """``value`` (seconds, ms, µs or ns since the epoch, told apart by magnitude) in ms.

    The one normalisation every path uses (validators, row builders, count
    bounds). Fractions of a millisecond are dropped (floor), so a nanosecond
    timestamp and its millisecond truncation name the same instant.
    """
    if value < _SECONDS_BELOW:
        return value * 1000
    if value < _MILLIS_BELOW:
        return value
    if value < _MICROS_BELOW:
        return value // 1000
    return value // 1_000_000


def timestamp_unit(value: int) -> str:
    """The unit :func:`timestamp_ms` reads ``value`` in."""
    if value < _SECONDS_BELOW:
        return "seconds"
    if value < _MILLIS_BELOW:
        return "milliseconds"
    if value < _MICROS_BELOW:
        return "microseconds"
    return "nanoseconds"


def latest_timestamp_ms(now_ms: int, max_future_ms: int) -> int:
    """The latest timestamp accepted at ``now_ms``: ``max_future_ms`` ahead, rounded up
    to the next whole hour (UTC).

    Rounding makes the bound a step function that changes once an hour, so the
    API document can state it as a number that stays exact while a client
    uses it (a bound moving every millisecond would be wrong by the time the
    document is read). The allowance is therefore between ``max_future_ms``
    and one hour more.
    """
    return -(-(now_ms + max_future_ms) // WINDOW_STEP_MS) * WINDOW_STEP_MS


class TimestampRange(NamedTuple):
    unit: str
    low: int
    high: int
    """Inclusive bounds of the raw values accepted in ``unit``."""


def timestamp_ranges(now_ms: int, max_future_ms: int) -> list[TimestampRange]:
    """The raw values :func:`timestamp_ms` maps into the accepted window, per unit."""
    high = latest_timestamp_ms(now_ms, max_future_ms)
    return [
        TimestampRange("seconds", -(-MIN_TIMESTAMP_MS // 1000), high // 1000),
        TimestampRange("milliseconds", MIN_TIMESTAMP_MS, high),
        TimestampRange("microseconds", MIN_TIMESTAMP_MS * 1000, high * 1000 + 999),
        TimestampRange("nanoseconds", MIN_TIMESTAMP_MS * 1_000_000, high * 1_000_000 + 999_999),
    ]


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
    high = latest_timestamp_ms(now_ms, limits.max_future_ms)
    if MIN_TIMESTAMP_MS <= timestamp_ms(value) <= high:
        return
    unit = timestamp_unit(value)
    when = "before 2000-01-01" if timestamp_ms(value) < MIN_TIMESTAMP_MS else "too far ahead"
    out.append(
        FieldViolation(
            field,
            f"must be Unix epoch seconds, milliseconds, microseconds or nanoseconds (told "
            f"apart by magnitude) from 2000-01-01 to {high} ms ("
            f"{limits.max_future_ms // 3_600_000} hours past the server's clock, rounded up to "
            f"the hour), or 0 for now; got {value}, as {unit} {when}",
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
    found = invisible_violation(value)
    if found:
        out.append(FieldViolation(field, found))


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
        index = next(i for i, c in enumerate(value) if not "\x21" <= c <= "\x7e")
        out.append(
            FieldViolation(
                field,
                f"must be printable ASCII without spaces; got {describe_char(value[index])} "
                f"at index {index}",
            )
        )


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
            elif found := invisible_violation(key, "key must"):
                out.append(FieldViolation(prefix + _key_path(key), found))
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
    """Bounds are timestamps like any other (:func:`timestamp_ms`), 0 meaning unbounded.

    ``end`` at or before ``start`` is an empty range, not an error: the count is
    0, as for any range holding no event. (Refusing it would be a rule between
    two parameters, which no API schema language can state.)
    """
    out: list[FieldViolation] = []
    for field, value in (("start", req.start), ("end", req.end)):
        if value < 0:
            out.append(
                FieldViolation(field, f"must be a Unix epoch time >= 0 (0: unbounded), got {value}")
            )
    check_filter_name(out, "event_name", req.event_name)
    check_filter_name(out, "user_id", req.user_id)
    return out


def check_filter_name(
    out: list[FieldViolation],
    field: str,
    value: str,
    max_chars: int = DEFAULT_LIMITS.max_name_chars,
) -> None:
    """A read filter on a name: empty (no filter), or what a stored name can be.

    What no stored name can hold is a mistake, not a miss; and the check keeps
    characters a store cannot compare (PostgreSQL refuses NUL) away from it.
    Blank is allowed: a filter of spaces simply matches nothing.
    """
    if len(value) > max_chars:
        out.append(
            FieldViolation(field, f"must be at most {max_chars} characters, got {len(value)}")
        )
    elif found := invisible_violation(value):
        out.append(FieldViolation(field, found))


def validate_tracking_id(tracking_id: str) -> list[FieldViolation]:
    if not tracking_id:
        return [FieldViolation("tracking_id", "must not be empty")]
    out: list[FieldViolation] = []
    _check_id(out, "tracking_id", tracking_id, DEFAULT_LIMITS)
    return out
