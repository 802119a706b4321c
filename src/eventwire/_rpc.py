"""The operations table: each RPC's full method, the scope it needs, its rate
cost and the gateway routes serving it, read by every door (gRPC auth and
limits, the gateway, the OpenAPI document).

Method names are read from the generated descriptors rather than spelled out:
a method renamed or removed in ``proto/`` fails here, at import, instead of
turning into an ``UNIMPLEMENTED`` at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from google.protobuf.descriptor import ServiceDescriptor

from eventwire.api import analytics_pb2, destinations_pb2, plans_pb2, telemetry_pb2

ANALYTICS: Final = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"]
TELEMETRY: Final = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"]
DESTINATIONS: Final = destinations_pb2.DESCRIPTOR.services_by_name["DestinationsService"]
PLANS: Final = plans_pb2.DESCRIPTOR.services_by_name["PlansService"]
SERVICES: Final = (ANALYTICS, TELEMETRY, DESTINATIONS, PLANS)
SERVICE_NAMES: Final = tuple(service.full_name for service in SERVICES)


def methods(service: ServiceDescriptor) -> Mapping[str, str]:
    """``{"TrackEvent": "/analytics.AnalyticsService/TrackEvent", ...}`` for ``service``."""
    return {m.name: f"/{service.full_name}/{m.name}" for m in service.methods}


ANALYTICS_METHODS: Final = methods(ANALYTICS)
TELEMETRY_METHODS: Final = methods(TELEMETRY)
DESTINATIONS_METHODS: Final = methods(DESTINATIONS)
PLANS_METHODS: Final = methods(PLANS)


READ: Final = "read"
WRITE: Final = "write"
ADMIN: Final = "admin"
"""The scopes an operation may need; a token's scopes name the same strings.
``admin`` is for operations that change what the server does with data it
already holds (pausing or replaying a destination, applying a tracking plan,
replaying or discarding quarantine); it implies neither ``read`` nor ``write``."""

PER_MESSAGE: Final = "per message"
"""The one rate-cost rule: each request message is charged
``eventwire.security.limits.cost_of(message)`` as it arrives, on every door
(a stream pays per message, a batch by what it carries)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the API, as every door sees it."""

    method: str
    """The full gRPC method, ``/analytics.AnalyticsService/TrackEvent``."""
    scope: str
    """:data:`READ`, :data:`WRITE` or :data:`ADMIN`."""
    routes: tuple[tuple[str, str], ...]
    """The gateway's ``(HTTP method, path template)`` pairs serving it (HEAD
    rides along with GET); empty for streams only gRPC carries."""
    cost: str = PER_MESSAGE

    @property
    def name(self) -> str:
        """``AnalyticsService.TrackEvent``: service and method, as docs name it."""
        service, _, method = self.method[1:].partition("/")
        return f"{service.rpartition('.')[2]}.{method}"


def _op(table: Mapping[str, str], name: str, scope: str, *routes: str) -> Operation:
    # ``table[name]`` fails at import when proto/ renames or drops the method.
    pairs = tuple((verb, path) for verb, _, path in (route.partition(" ") for route in routes))
    return Operation(table[name], scope, pairs)


OPERATIONS: Final = (
    _op(ANALYTICS_METHODS, "TrackEvent", WRITE, "POST /v1/events"),
    _op(ANALYTICS_METHODS, "TrackEvents", WRITE, "POST /v1/events:batch"),
    _op(ANALYTICS_METHODS, "StreamEvents", WRITE),
    _op(ANALYTICS_METHODS, "IngestEvents", WRITE),
    _op(ANALYTICS_METHODS, "CountEvents", READ, "GET /v1/events:count"),
    _op(ANALYTICS_METHODS, "QueryEvents", READ, "GET /v1/events:query"),
    _op(ANALYTICS_METHODS, "ExportEvents", READ, "GET /v1/events:export"),
    _op(TELEMETRY_METHODS, "ReportAlert", WRITE, "POST /v1/alerts"),
    _op(TELEMETRY_METHODS, "GetAlert", READ, "GET /v1/alerts/{tracking_id}"),
    _op(TELEMETRY_METHODS, "ListAlerts", READ, "GET /v1/alerts"),
    _op(TELEMETRY_METHODS, "WatchAlerts", READ, "GET /v1/alerts:watch"),
    _op(DESTINATIONS_METHODS, "ListDestinations", READ, "GET /v1/destinations"),
    _op(DESTINATIONS_METHODS, "PauseDestination", ADMIN, "POST /v1/destinations:pause"),
    _op(DESTINATIONS_METHODS, "ResumeDestination", ADMIN, "POST /v1/destinations:resume"),
    _op(DESTINATIONS_METHODS, "ReplayDestination", ADMIN, "POST /v1/destinations:replay"),
    _op(DESTINATIONS_METHODS, "ListDeadLetters", READ, "GET /v1/destinations:deadLetters"),
    _op(
        DESTINATIONS_METHODS,
        "RetryDeadLetters",
        ADMIN,
        "POST /v1/destinations:retryDeadLetters",
    ),
    _op(
        DESTINATIONS_METHODS,
        "DiscardDeadLetters",
        ADMIN,
        "POST /v1/destinations:discardDeadLetters",
    ),
    _op(PLANS_METHODS, "ApplyPlan", ADMIN, "POST /v1/plans"),
    _op(PLANS_METHODS, "GetPlan", READ, "GET /v1/plans"),
    _op(PLANS_METHODS, "DiffPlan", READ, "POST /v1/plans:diff"),
    _op(PLANS_METHODS, "ListQuarantine", READ, "GET /v1/quarantine"),
    _op(PLANS_METHODS, "ReplayQuarantine", ADMIN, "POST /v1/quarantine:replay"),
    _op(PLANS_METHODS, "DiscardQuarantine", ADMIN, "POST /v1/quarantine:discard"),
)
"""Every operation of the API: what it needs (scope), what it costs, where the gateway serves it."""

BY_METHOD: Final[Mapping[str, Operation]] = {op.method: op for op in OPERATIONS}
BY_ROUTE: Final[Mapping[tuple[str, str], Operation]] = {
    route: op for op in OPERATIONS for route in op.routes
}
