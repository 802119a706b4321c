"""The services' logic, independent of the transport.

Both front doors (the gRPC servicers and the HTTP gateway) call this class with
decoded protobuf requests and get protobuf replies or a :class:`ServiceError`.
The tenant always comes from the caller's credentials, never from the request.

A front door may run on an event loop of its own (the HTTP gateway does, on
its own thread): validation and row building then run there, and only the
awaits on the pipeline and the store hop to the loop those live on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

from eventwire._errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from eventwire._ids import random_id, uuid7
from eventwire._loops import run_on
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.alerts import alert_message, validate_alert_details
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    MIN_TIMESTAMP_MS,
    Limits,
    latest_timestamp_ms,
    timestamp_ms,
    validate_alert,
    validate_count,
    validate_event,
    validate_tracking_id,
)
from eventwire.observability.metrics import ServerMetrics
from eventwire.store.base import AlertRow, EventQuery, EventRow, Store, StoreUnavailable

T = TypeVar("T")

MAX_BATCH_EVENTS: Final = 10_000
"""Most events one batch request may carry; bigger batches are split by the client."""


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    """Position of the rejected event in the batch."""
    violations: list[FieldViolation]


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: int
    """Valid events newly stored."""
    duplicates: int
    """Valid events whose event_id was already stored (or repeated within the batch)."""
    rejections: list[Rejection]
    """Invalid events, none of them stored, in batch order."""


# A NamedTuple's own __new__ is a Python function around this: one frame less a row.
_new_row: Final = tuple.__new__


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestService:
    def __init__(
        self,
        pipeline: IngestPipeline,
        store: Store,
        *,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], int] = now_ms,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pipeline = pipeline
        self._store = store
        self.limits = limits
        self._clock = clock

    def _core(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """``coro``, to be awaited on the pipeline's loop whichever loop awaits it."""
        loop = self._pipeline.loop
        if loop is None or loop is asyncio.get_running_loop():
            return coro
        return run_on(loop, coro)

    # -- analytics -----------------------------------------------------------------

    def event_row(
        self, req: analytics_pb2.TrackEventRequest, tenant: str, prefix: str = ""
    ) -> EventRow:
        """Validate ``req`` and turn it into a row; raise :class:`InvalidArgument`."""
        received = self._clock()
        row = _fast_row(req, tenant, received, self.limits)
        if row is not None:
            return row
        violations = validate_event(req, received, self.limits, prefix)
        if violations:
            if self._metrics is not None:
                self._metrics.events_rejected.inc()
            raise InvalidArgument(violations)
        return _row(req, tenant, received, _properties(req))

    def event_rows(
        self,
        reqs: Sequence[analytics_pb2.TrackEventRequest],
        tenant: str,
        prefix: str = "events",
    ) -> tuple[list[EventRow], list[Rejection]]:
        """:meth:`event_row` for a whole batch: the valid events' rows, and the rejections.

        One clock reading serves the whole batch (it was received at once), and
        the common case costs one pass over each event's properties; only an
        event the quick check doubts goes through the full validator.
        """
        received = self._clock()
        limits = self.limits
        latest = latest_timestamp_ms(received, limits.max_future_ms)
        rows: list[EventRow] = []
        rejections: list[Rejection] = []
        for index, req in enumerate(reqs):
            row = _fast_row(req, tenant, received, limits, latest)
            if row is None:
                violations = validate_event(req, received, limits, f"{prefix}[{index}].")
                if violations:
                    rejections.append(Rejection(index, violations))
                    continue
                row = _row(req, tenant, received, _properties(req))
            rows.append(row)
        if rejections and self._metrics is not None:
            self._metrics.events_rejected.inc(len(rejections))
        return rows, rejections

    async def track_event(
        self, req: analytics_pb2.TrackEventRequest, tenant: str
    ) -> analytics_pb2.TrackEventResponse:
        row = self.event_row(req, tenant)
        inserted = await self._core(self._pipeline.add_events((row,)))
        return analytics_pb2.TrackEventResponse(
            success=True, event_id=row.event_id, duplicate=inserted == 0
        )

    async def add_stream(self, rows: Sequence[EventRow]) -> analytics_pb2.TrackEventResponse:
        """Store a whole stream's rows in one transaction (all or nothing)."""
        inserted = await self._core(self._pipeline.add_events(rows)) if rows else 0
        return analytics_pb2.TrackEventResponse(
            success=True, accepted=inserted, duplicates=len(rows) - inserted
        )

    async def ingest_batch(
        self,
        reqs: Sequence[analytics_pb2.TrackEventRequest],
        tenant: str,
        prefix: str = "events",
    ) -> BatchResult:
        """Store every valid event of ``reqs`` in one transaction; report the invalid ones.

        Unlike a stream, a batch is not atomic: one bad event does not cost the
        others. Violation paths are ``{prefix}[{index}].{field}``.
        """
        if len(reqs) > MAX_BATCH_EVENTS:
            raise InvalidArgument(
                [
                    FieldViolation(
                        prefix,
                        f"a batch may carry at most {MAX_BATCH_EVENTS} events, got {len(reqs)}; "
                        "split it into several batches",
                    )
                ]
            )
        rows, rejections = self.event_rows(reqs, tenant, prefix)
        inserted = await self._core(self._pipeline.add_events(rows)) if rows else 0
        return BatchResult(inserted, len(rows) - inserted, rejections)

    async def track_batch(
        self, batch: analytics_pb2.EventBatch, tenant: str
    ) -> analytics_pb2.IngestAck:
        """:meth:`ingest_batch` for an ``EventBatch``, answered with its ``IngestAck``."""
        result = await self.ingest_batch(batch.events, tenant)
        return analytics_pb2.IngestAck(
            sequence=batch.sequence,
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=len(result.rejections),
            rejections=[
                analytics_pb2.RejectedEvent(
                    index=r.index,
                    event_id=batch.events[r.index].event_id,
                    violations=[
                        analytics_pb2.FieldViolation(field=v.field, description=v.description)
                        for v in r.violations
                    ],
                )
                for r in result.rejections
            ],
        )

    async def count_events(
        self, req: analytics_pb2.CountEventsRequest, tenant: str
    ) -> analytics_pb2.CountEventsResponse:
        violations = validate_count(req)
        if violations:
            raise InvalidArgument(violations)
        query = EventQuery(
            req.event_name,
            req.user_id,
            timestamp_ms(req.start) if req.start else 0,
            timestamp_ms(req.end) if req.end else 0,
        )
        count = await self._core(_read(self._store.count_events(tenant, query)))
        return analytics_pb2.CountEventsResponse(count=count)

    # -- telemetry -----------------------------------------------------------------

    async def report_alert(
        self, req: telemetry_pb2.AlertRequest, tenant: str
    ) -> telemetry_pb2.AlertResponse:
        received = self._clock()
        violations = validate_alert(req, received, self.limits) + validate_alert_details(req)
        if violations:
            raise InvalidArgument(violations)
        row = AlertRow(
            random_id(),
            tenant,
            req.device_id,
            req.alert_type,
            timestamp_ms(req.timestamp) if req.timestamp else received,
            received,
            req.idempotency_key or None,
            req.severity,
            req.message,
            orjson.dumps(dict(req.attributes)).decode() if req.attributes else "{}",
        )
        tracking_id = await self._core(self._pipeline.add_alert(row))
        return telemetry_pb2.AlertResponse(acknowledged=True, tracking_id=tracking_id)

    async def get_alert(
        self, req: telemetry_pb2.GetAlertRequest, tenant: str
    ) -> telemetry_pb2.Alert:
        violations = validate_tracking_id(req.tracking_id)
        if violations:
            raise InvalidArgument(violations)
        row = await self._core(_read(self._store.get_alert(tenant, req.tracking_id)))
        if row is None:
            raise NotFound(f"no alert with tracking_id {req.tracking_id!r}")
        return alert_message(row)


def _row(
    req: analytics_pb2.TrackEventRequest, tenant: str, received: int, props: dict[str, str]
) -> EventRow:
    return EventRow(
        tenant,
        req.event_id or uuid7(),
        req.event_name,
        req.user_id,
        timestamp_ms(req.timestamp) if req.timestamp else received,
        received,
        orjson.dumps(props).decode() if props else "{}",
    )


def _fast_row(
    req: analytics_pb2.TrackEventRequest,
    tenant: str,
    received: int,
    limits: Limits,
    latest: int = 0,
) -> EventRow | None:
    """The row of an event that is certainly valid, else None (ask the validator).

    ``latest``: :func:`latest_timestamp_ms` of ``received``, when the caller
    computed it once for a whole batch.

    Conservative by construction: every test here is at least as strict as
    :func:`validate_event`'s (``isprintable`` rejects a superset of the
    invisible characters; the size bound over-estimates the encoding), so a row
    returned here is one the validator accepts. The timestamp is normalised by
    the same :func:`timestamp_ms` as everywhere else. The point is the properties map: reading
    a protobuf map costs about 1 µs per event, and this reads it once, for the
    checks and the JSON together, where validate-then-convert read it twice.
    """
    name = req.event_name
    user = req.user_id
    event_id = req.event_id
    timestamp = req.timestamp
    if timestamp:
        latest = latest or latest_timestamp_ms(received, limits.max_future_ms)
        if not MIN_TIMESTAMP_MS <= timestamp <= latest:  # milliseconds need no normalising
            timestamp = timestamp_ms(timestamp)
            if not MIN_TIMESTAMP_MS <= timestamp <= latest:
                return None
    else:
        timestamp = received
    max_name = limits.max_name_chars
    if not (
        name
        and len(name) <= max_name
        and name.isprintable()
        and not name.isspace()
        and (not user or (len(user) <= max_name and user.isprintable() and not user.isspace()))
        and (
            not event_id
            or (
                len(event_id) <= limits.max_id_chars
                and event_id.isascii()
                and event_id.isprintable()
                and " " not in event_id
            )
        )
    ):
        return None
    chars = len(name) + len(user) + len(event_id)
    # Not dict(): upb's map feeds it through Python's KeysView and a lookup per
    # key (~1.3 us for three properties); a comprehension over the map is ~0.6.
    properties = req.properties
    props = {key: properties[key] for key in properties}
    if props:
        keys = "".join(props)
        values = "".join(props.values())
        # Per-key and per-value lengths only matter when the totals could exceed them.
        if (
            len(props) > limits.max_properties
            or "" in props
            or not keys.isprintable()
            or "\x00" in values
            or (len(keys) > max_name and max(map(len, props)) > max_name)
            or (
                len(values) > limits.max_value_chars
                and max(map(len, props.values())) > limits.max_value_chars
            )
        ):
            return None
        chars += len(keys) + len(values)
    # UTF-8 takes at most 4 bytes a character; 16 bytes a field more than covers
    # tags and lengths. Only an event near the limit pays for the exact size.
    if 4 * chars + 16 * (len(props) + 5) > limits.max_event_bytes and (
        req.ByteSize() > limits.max_event_bytes
    ):
        return None
    return _new_row(
        EventRow,
        (
            tenant,
            event_id or uuid7(),
            name,
            user,
            timestamp,
            received,
            orjson.dumps(props).decode() if props else "{}",
        ),
    )


def _properties(req: analytics_pb2.TrackEventRequest) -> dict[str, str]:
    properties = req.properties
    return {key: properties[key] for key in properties}


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise Unavailable("storage is unavailable; retry later") from exc
