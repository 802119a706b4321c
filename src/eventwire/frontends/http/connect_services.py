"""The Connect door's methods: charge the request, call the service layer. Nothing else.

They implement the generated ``Protocol`` classes of ``eventwire.api.*_connect``
and call the same :class:`~eventwire.ingest.service.IngestService` and
:class:`~eventwire.reads.service.ReadService` methods as the gRPC servicers and
the JSON routes. Each request message is charged to the tenant's rate limit by
the operations table's rule (``cost_of``, as it arrives) and, while the call
holds it, to the server's byte budget. What they raise becomes a status in
:class:`~eventwire.frontends.http.connect.ConnectGate`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from connectrpc.request import RequestContext

from eventwire.api import (
    analytics_connect,
    analytics_pb2,
    destinations_connect,
    plans_connect,
    telemetry_connect,
    telemetry_pb2,
)
from eventwire.destinations.ops import DestinationOps
from eventwire.ingest.plans_service import PlansService
from eventwire.ingest.service import IngestService
from eventwire.ingest.streams import store_stream
from eventwire.reads.service import ReadService
from eventwire.security.auth import current_tenant
from eventwire.security.limits import HELD_EVENT_OVERHEAD, ByteBudget, RateLimiter, cost_of

Req = TypeVar("Req")
Res = TypeVar("Res")
Ctx = RequestContext[Any, Any]


class Charges:
    """The rate limiter and byte budget a Connect call is charged to, and a stream's limits."""

    def __init__(
        self,
        limiter: RateLimiter | None,
        budget: ByteBudget | None,
        *,
        max_stream_events: int,
        max_stream_bytes: int,
    ) -> None:
        self._limiter = limiter
        self._budget = budget
        self.max_stream_events = max_stream_events
        self.max_stream_bytes = max_stream_bytes
        self.stream_budget = budget or ByteBudget(0)

    async def unary(self, request: Req, call: Callable[[Req, str], Awaitable[Res]]) -> Res:
        tenant = current_tenant()
        if self._limiter is not None:
            self._limiter.charge(tenant, cost_of(request))
        budget = self._budget
        if budget is None:
            return await call(request, tenant)
        size: int = request.ByteSize()  # type: ignore[attr-defined]
        budget.take(size)
        try:
            return await call(request, tenant)
        finally:
            budget.release(size)

    def charge(self, request: object) -> str:
        """Charge ``request`` (a stream's request) to the rate limit; the caller's tenant."""
        tenant = current_tenant()
        if self._limiter is not None:
            self._limiter.charge(tenant, cost_of(request))
        return tenant

    async def each(self, requests: AsyncIterator[Req]) -> AsyncIterator[Req]:
        """A stream's requests, each charged to the rate limit as it arrives."""
        async for request in requests:
            self.charge(request)
            yield request


class ConnectAnalytics(analytics_connect.AnalyticsService):
    def __init__(self, service: IngestService, reads: ReadService | None, charges: Charges) -> None:
        self._service = service
        self._reads = reads
        self._charges = charges

    async def track_event(
        self, request: analytics_pb2.TrackEventRequest, ctx: Ctx, /
    ) -> analytics_pb2.TrackEventResponse:
        return await self._charges.unary(request, self._service.track_event)

    async def track_events(
        self, request: analytics_pb2.EventBatch, ctx: Ctx, /
    ) -> analytics_pb2.IngestAck:
        return await self._charges.unary(request, self._service.track_batch)

    async def stream_events(
        self, request: AsyncIterator[analytics_pb2.TrackEventRequest], ctx: Ctx, /
    ) -> analytics_pb2.TrackEventResponse:
        charges = self._charges
        return await store_stream(
            self._service,
            charges.each(request),
            current_tenant(),
            max_events=charges.max_stream_events,
            max_bytes=charges.max_stream_bytes,
            budget=charges.stream_budget,
            overhead=HELD_EVENT_OVERHEAD,
        )

    async def ingest_events(
        self, request: AsyncIterator[analytics_pb2.EventBatch], ctx: Ctx, /
    ) -> AsyncIterator[analytics_pb2.IngestAck]:
        # One batch at a time, each acked once committed: over HTTP/1.1 the stream
        # is half-duplex anyway, and the gRPC door is there for many in flight.
        async for batch in request:
            yield await self._charges.unary(batch, self._service.track_batch)

    async def count_events(
        self, request: analytics_pb2.CountEventsRequest, ctx: Ctx, /
    ) -> analytics_pb2.CountEventsResponse:
        return await self._charges.unary(request, self._service.count_events)

    async def query_events(
        self, request: analytics_pb2.QueryEventsRequest, ctx: Ctx, /
    ) -> analytics_pb2.QueryEventsResponse:
        reads = _needed(self._reads)
        return await self._charges.unary(request, reads.query_events)

    async def export_events(
        self, request: analytics_pb2.ExportEventsRequest, ctx: Ctx, /
    ) -> AsyncIterator[analytics_pb2.ExportedEvent]:
        tenant = self._charges.charge(request)
        events = await _needed(self._reads).export_events(request, tenant)
        async for event in events:
            yield event


class ConnectTelemetry(telemetry_connect.TelemetryService):
    def __init__(self, service: IngestService, reads: ReadService | None, charges: Charges) -> None:
        self._service = service
        self._reads = reads
        self._charges = charges

    async def report_alert(
        self, request: telemetry_pb2.AlertRequest, ctx: Ctx, /
    ) -> telemetry_pb2.AlertResponse:
        return await self._charges.unary(request, self._service.report_alert)

    async def get_alert(
        self, request: telemetry_pb2.GetAlertRequest, ctx: Ctx, /
    ) -> telemetry_pb2.Alert:
        return await self._charges.unary(request, self._service.get_alert)

    async def list_alerts(
        self, request: telemetry_pb2.ListAlertsRequest, ctx: Ctx, /
    ) -> telemetry_pb2.ListAlertsResponse:
        reads = _needed(self._reads)
        return await self._charges.unary(request, reads.list_alerts)

    async def watch_alerts(
        self, request: telemetry_pb2.WatchAlertsRequest, ctx: Ctx, /
    ) -> AsyncIterator[telemetry_pb2.Alert]:
        tenant = self._charges.charge(request)
        alerts = await _needed(self._reads).watch_alerts(request, tenant)
        async for alert in alerts:
            yield alert


def neutral(protocol: type[Any], ops: object, charges: Charges) -> object:
    """A service whose operations are one transport-neutral object (``ops.list_destinations
    (request)``, the RPC's name in snake case), as an implementation of its generated
    Connect ``protocol``: each request charged, then handed over. The operation is
    looked up per call, so building the door touches nothing of ``ops``."""

    def adapter(name: str) -> Callable[..., Awaitable[Any]]:
        # An operation that acts for a tenant takes it after the request (the plans'
        # quarantine); one that does not (destinations, plans themselves) takes the request.
        tenanted: list[bool] = []  # learnt at the first call: building touches nothing of ops

        async def call(_self: object, request: Any, ctx: Ctx, /) -> Any:
            operation = getattr(ops, name)
            if not tenanted:
                tenanted.append(len(inspect.signature(operation).parameters) == 2)
            if tenanted[0]:
                return await charges.unary(request, operation)
            return await charges.unary(request, lambda req, _tenant: operation(req))

        return call

    methods = {name: adapter(name) for name in vars(protocol) if not name.startswith("_")}
    return type(protocol.__name__, (protocol,), methods)()


def _needed(reads: ReadService | None) -> ReadService:
    if reads is None:
        from eventwire._errors import Unavailable

        raise Unavailable("reads are not served by this gateway")
    return reads


def implementations(
    service: IngestService,
    reads: ReadService | None,
    charges: Charges,
    *,
    destinations: DestinationOps | None = None,
    plans: PlansService | None = None,
) -> dict[str, object]:
    """The Connect door's methods, by service full name."""
    found: dict[str, object] = {
        "analytics.AnalyticsService": ConnectAnalytics(service, reads, charges),
        "telemetry.TelemetryService": ConnectTelemetry(service, reads, charges),
    }
    if destinations is not None:
        found["eventwire.destinations.v1.DestinationsService"] = neutral(
            destinations_connect.DestinationsService, destinations, charges
        )
    if plans is not None:
        found["eventwire.plans.v1.PlansService"] = neutral(
            plans_connect.PlansService, plans, charges
        )
    return found
