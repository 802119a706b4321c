"""eventwire: move analytics events and device alerts between services over gRPC.

The names most programs need are here; the rest of the client is in
:mod:`eventwire.client`, the generated API in :mod:`eventwire.api`, the server
in :mod:`eventwire.server`, test helpers in :mod:`eventwire.testing`.
"""

from __future__ import annotations

from eventwire.client import (
    AnalyticsClient,
    CircuitBreakerPolicy,
    ClientMetrics,
    EventwireError,
    HedgingPolicy,
    RetryPolicy,
    RpcError,
    SyncAnalyticsClient,
    SyncTelemetryClient,
    SyncTracker,
    TelemetryClient,
    ThrottlePolicy,
    Tracker,
    TrackerConfig,
    targets,
)

__version__ = "0.1.0"

__all__ = [
    "AnalyticsClient",
    "CircuitBreakerPolicy",
    "ClientMetrics",
    "EventwireError",
    "HedgingPolicy",
    "RetryPolicy",
    "RpcError",
    "SyncAnalyticsClient",
    "SyncTelemetryClient",
    "SyncTracker",
    "TelemetryClient",
    "ThrottlePolicy",
    "Tracker",
    "TrackerConfig",
    "__version__",
    "targets",
]
