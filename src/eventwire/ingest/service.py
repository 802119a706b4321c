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
from eventwire._ids import random_id
from eventwire._loops import run_on
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.alerts import alert_message, validate_alert_details
from eventwire.ingest.enforcement import (
    OUTCOMES,
    Flagged,
    Sorted,
    field_violations,
    flagged_message,
    judge_alert,
    proto_violations,
    quarantine_alert,
    sort_batch,
    violations_json,
)
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.ingest.plan_state import PlanState
from eventwire.ingest.rows import fast_row, fast_rows, properties_of, rows_one_by_one
from eventwire.ingest.rows import row as plain_row
from eventwire.ingest.validation import (
    DEFAULT_LIMITS,
    Limits,
    latest_timestamp_ms,
    timestamp_ms,
    validate_alert,
    validate_count,
    validate_event,
    validate_tracking_id,
)
from eventwire.observability.metrics import ServerMetrics
from eventwire.store.base import (
    AlertRow,
    EventQuery,
    EventRow,
    EventValues,
    Store,
    StoreUnavailable,
)

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
    quarantined: int = 0
    """Events the tracking plan put in the quarantine."""
    flagged: tuple[Flagged, ...] = ()
    """Events the tracking plan found violations in and did not reject."""
    plan_version: int = 0


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
        plans: PlanState | None = None,
    ) -> None:
        self._metrics = metrics
        self.plans = plans
        """The tracking plan in force (None: never any; docs/tracking-plans.md)."""
        self._pipeline = pipeline
        self._store = store
        self.limits = limits
        self._clock = clock

    def on_core(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """``coro`` to be awaited on the pipeline's loop (the plans service's store calls)."""
        return self._core(coro)

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
        values = fast_row(req, tenant, received, self.limits)
        if values is not None:
            return EventRow(*values)
        violations = validate_event(req, received, self.limits, prefix)
        if violations:
            if self._metrics is not None:
                self._metrics.events_rejected.inc()
            raise InvalidArgument(violations)
        return plain_row(req, tenant, received, properties_of(req))

    def event_rows(
        self,
        reqs: Sequence[analytics_pb2.TrackEventRequest],
        tenant: str,
        prefix: str = "events",
    ) -> tuple[list[EventValues], list[Rejection]]:
        """:meth:`event_row` for a whole batch: the valid events' rows, and the rejections.

        One clock reading serves the whole batch (it was received at once). The
        common case, a batch of valid events, is checked column by column
        (:func:`fast_rows`); otherwise each event is, and only an event the quick
        check doubts goes through the full validator.
        """
        received = self._clock()
        limits = self.limits
        latest = latest_timestamp_ms(received, limits.max_future_ms)
        quick = fast_rows(reqs, tenant, received, limits, latest)
        if quick is not None:
            return quick, []
        rows, _, invalid = rows_one_by_one(reqs, tenant, received, limits, latest, prefix=prefix)
        rejections = [Rejection(index, violations) for index, violations in invalid]
        if rejections and self._metrics is not None:
            self._metrics.events_rejected.inc(len(rejections))
        return rows, rejections

    def sorter(self) -> Sorted | None:
        """A request's sorting by the plan in force, or None when there is none."""
        plans = self.plans
        active = None if plans is None else plans.active
        return None if active is None else Sorted(active, self._clock())

    def sort_event(
        self,
        sorted_: Sorted,
        req: analytics_pb2.TrackEventRequest,
        tenant: str,
        index: int = 0,
        prefix: str = "",
    ) -> str:
        """Validate ``req`` and sort it by the plan into ``sorted_``; its outcome.
        Invalid events raise :class:`InvalidArgument`, as :meth:`event_row`."""
        row = self.event_row(req, tenant, prefix)._replace(plan_version=sorted_.plan.version)
        return sorted_.add(row, properties_of(req), index, prefix)

    async def track_event(
        self, req: analytics_pb2.TrackEventRequest, tenant: str
    ) -> analytics_pb2.TrackEventResponse:
        sorted_ = self.sorter()
        if sorted_ is None:
            row = self.event_row(req, tenant)
            inserted = await self._core(self._pipeline.add_events((row,)))
            return analytics_pb2.TrackEventResponse(
                success=True, event_id=row.event_id, duplicate=inserted == 0
            )
        outcome = self.sort_event(sorted_, req, tenant)
        sorted_.count()
        if sorted_.rejected:
            raise InvalidArgument(sorted_.rejected[0][1])
        inserted = await self._core(self._pipeline.add_events(sorted_.rows, sorted_.quarantined))
        flagged = sorted_.flagged
        return analytics_pb2.TrackEventResponse(
            success=True,
            event_id=EventRow(*sorted_.rows[0]).event_id
            if sorted_.rows
            else sorted_.quarantined[0].key,
            duplicate=bool(sorted_.rows) and inserted == 0,
            outcome=OUTCOMES[outcome],
            violations=proto_violations(flagged[0].violations) if flagged else (),
            plan_version=sorted_.plan.version,
        )

    async def add_stream(
        self, rows: Sequence[EventValues], sorted_: Sorted | None = None
    ) -> analytics_pb2.TrackEventResponse:
        """Store a whole stream's rows in one transaction (all or nothing); with a
        plan, ``sorted_`` holds them instead (:meth:`sort_event`)."""
        if sorted_ is not None:
            sorted_.count()
            if sorted_.rejected:
                violations = [v for _, found in sorted_.rejected for v in found]
                raise InvalidArgument(violations)
            rows = sorted_.rows
        quarantined = sorted_.quarantined if sorted_ is not None else []
        inserted = (
            await self._core(self._pipeline.add_events(rows, quarantined))
            if rows or quarantined
            else 0
        )
        reply = analytics_pb2.TrackEventResponse(
            success=True, accepted=inserted, duplicates=len(rows) - inserted
        )
        if sorted_ is not None:
            reply.quarantined = len(quarantined)
            reply.flagged.extend(map(flagged_message, sorted_.flagged))
            reply.plan_version = sorted_.plan.version
        return reply

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
        sorted_ = self.sorter()
        if sorted_ is not None:
            return await self._sorted_batch(sorted_, reqs, tenant, prefix)
        rows, rejections = self.event_rows(reqs, tenant, prefix)
        inserted = await self._core(self._pipeline.add_events(rows)) if rows else 0
        return BatchResult(inserted, len(rows) - inserted, rejections)

    async def _sorted_batch(
        self,
        sorted_: Sorted,
        reqs: Sequence[analytics_pb2.TrackEventRequest],
        tenant: str,
        prefix: str,
    ) -> BatchResult:
        """:meth:`ingest_batch` with a plan in force: each valid event sorted by it."""
        invalid = sort_batch(sorted_, reqs, tenant, self.limits, prefix)
        rejections = [Rejection(index, violations) for index, violations in invalid]
        sorted_.count()
        if rejections and self._metrics is not None:
            self._metrics.events_rejected.inc(len(rejections))
        if sorted_.rejected:
            rejections.extend(Rejection(i, v) for i, v in sorted_.rejected)
            rejections.sort(key=lambda r: r.index)
        rows, quarantined = sorted_.rows, sorted_.quarantined
        inserted = (
            await self._core(self._pipeline.add_events(rows, quarantined))
            if rows or quarantined
            else 0
        )
        return BatchResult(
            inserted,
            len(rows) - inserted,
            rejections,
            len(quarantined),
            tuple(sorted_.flagged),
            sorted_.plan.version,
        )

    async def track_batch(
        self, batch: analytics_pb2.EventBatch, tenant: str
    ) -> analytics_pb2.IngestAck:
        """:meth:`ingest_batch` for an ``EventBatch``, answered with its ``IngestAck``."""
        result = await self.ingest_batch(batch.events, tenant)
        return analytics_pb2.IngestAck(
            sequence=batch.sequence,
            accepted=result.accepted,
            duplicates=result.duplicates,
            quarantined=result.quarantined,
            flagged=[flagged_message(flag) for flag in result.flagged],
            plan_version=result.plan_version,
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
        active = None if self.plans is None else self.plans.active
        if active is None:
            tracking_id = await self._core(self._pipeline.add_alert(row))
            return telemetry_pb2.AlertResponse(acknowledged=True, tracking_id=tracking_id)
        verdict = judge_alert(active, row, dict(req.attributes))
        if verdict.outcome == "reject":
            raise InvalidArgument(field_violations(verdict.violations))
        reply = telemetry_pb2.AlertResponse(
            acknowledged=True,
            outcome=OUTCOMES[verdict.outcome],
            violations=[f"{v.field}: {v.message} [{v.rule}]" for v in verdict.violations],
            plan_version=active.version,
        )
        if verdict.outcome == "quarantine":
            held = quarantine_alert(
                row, violations_json(verdict.violations), active.version, self._clock()
            )
            await self._core(self._pipeline.add_events((), (held,)))
            reply.tracking_id = held.key
        else:
            reply.tracking_id = await self._core(self._pipeline.add_alert(row))
        return reply

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


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise Unavailable("storage is unavailable; retry later") from exc
