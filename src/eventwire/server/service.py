"""The services' logic, independent of the transport.

Both front doors (the gRPC servicers and the HTTP gateway) call this class with
decoded protobuf requests and get protobuf replies or a :class:`ServiceError`.
The tenant always comes from the caller's credentials, never from the request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import orjson

from eventwire._ids import random_id, uuid7
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.observability.metrics import ServerMetrics
from eventwire.server.errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from eventwire.server.pipeline import IngestPipeline
from eventwire.server.validation import (
    DEFAULT_LIMITS,
    Limits,
    validate_alert,
    validate_count,
    validate_event,
    validate_tracking_id,
)
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

    # -- analytics -----------------------------------------------------------------

    def event_row(
        self, req: analytics_pb2.TrackEventRequest, tenant: str, prefix: str = ""
    ) -> EventRow:
        """Validate ``req`` and turn it into a row; raise :class:`InvalidArgument`."""
        received = self._clock()
        violations = validate_event(req, received, self.limits, prefix)
        if violations:
            if self._metrics is not None:
                self._metrics.events_rejected.inc()
            raise InvalidArgument(violations)
        return EventRow(
            tenant,
            req.event_id or uuid7(),
            req.event_name,
            req.user_id,
            req.timestamp or received,
            received,
            orjson.dumps(dict(req.properties)).decode() if req.properties else "{}",
        )

    async def track_event(
        self, req: analytics_pb2.TrackEventRequest, tenant: str
    ) -> analytics_pb2.TrackEventResponse:
        row = self.event_row(req, tenant)
        inserted = await self._pipeline.add_events((row,))
        return analytics_pb2.TrackEventResponse(
            success=True, event_id=row.event_id, duplicate=inserted == 0
        )

    async def add_stream(self, rows: Sequence[EventRow]) -> analytics_pb2.TrackEventResponse:
        """Store a whole stream's rows in one transaction (all or nothing)."""
        inserted = await self._pipeline.add_events(rows) if rows else 0
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
        rows: list[EventRow] = []
        rejections: list[Rejection] = []
        for index, req in enumerate(reqs):
            try:
                rows.append(self.event_row(req, tenant, f"{prefix}[{index}]."))
            except InvalidArgument as err:
                rejections.append(Rejection(index, err.violations))
        inserted = await self._pipeline.add_events(rows) if rows else 0
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
        query = EventQuery(req.event_name, req.user_id, req.start, req.end)
        count = await _read(self._store.count_events(tenant, query))
        return analytics_pb2.CountEventsResponse(count=count)

    # -- telemetry -----------------------------------------------------------------

    async def report_alert(
        self, req: telemetry_pb2.AlertRequest, tenant: str
    ) -> telemetry_pb2.AlertResponse:
        received = self._clock()
        violations = validate_alert(req, received, self.limits)
        if violations:
            raise InvalidArgument(violations)
        row = AlertRow(
            random_id(),
            tenant,
            req.device_id,
            req.alert_type,
            req.timestamp or received,
            received,
            req.idempotency_key or None,
        )
        tracking_id = await self._pipeline.add_alert(row)
        return telemetry_pb2.AlertResponse(acknowledged=True, tracking_id=tracking_id)

    async def get_alert(
        self, req: telemetry_pb2.GetAlertRequest, tenant: str
    ) -> telemetry_pb2.Alert:
        violations = validate_tracking_id(req.tracking_id)
        if violations:
            raise InvalidArgument(violations)
        row = await _read(self._store.get_alert(tenant, req.tracking_id))
        if row is None:
            raise NotFound(f"no alert with tracking_id {req.tracking_id!r}")
        return telemetry_pb2.Alert(
            tracking_id=row.tracking_id,
            device_id=row.device_id,
            alert_type=row.alert_type,
            timestamp=row.timestamp,
            received_at=row.received_at,
        )


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise Unavailable("storage is unavailable; retry later") from exc
