"""eventwire: move analytics events and device alerts between services over gRPC.

The names most programs need are here; the rest of the client is in
:mod:`eventwire.client`, the generated API in :mod:`eventwire.api`, test helpers
in :mod:`eventwire.testing`. The server (``pip install 'eventwire[server]'``)
is run by ``eventwire serve`` (:mod:`eventwire.runtime`).
"""

from __future__ import annotations

from eventwire._version import __version__
from eventwire.client import (
    AnalyticsClient,
    CircuitBreakerPolicy,
    ClientConfig,
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

__all__ = [
    "AnalyticsClient",
    "CircuitBreakerPolicy",
    "ClientConfig",
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
