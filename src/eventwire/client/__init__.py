"""eventwire's resilient client: deadlines, retries, throttling, circuit breaking, hedging.

Async first (:class:`AnalyticsClient`, :class:`TelemetryClient`) with blocking
twins (:class:`SyncAnalyticsClient`, :class:`SyncTelemetryClient`) that share
the same policies and state machines. Reads page for you (``list_alerts``), and
the server streams (``watch_alerts``, ``export_events``) come back as a
:class:`ResumableStream` (:class:`SyncResumableStream`) that reconnects and
resumes after its last cursor by itself. :class:`Tracker` (and :class:`SyncTracker`)
deliver events in the background, buffered, acknowledged and spooled to disk
(:mod:`eventwire.client.tracker`). One frozen :class:`ClientConfig` carries a
client's options; the same policies work on any stub through
:func:`resilient_channel`. The guide is docs/client.md (reads: docs/reading.md);
``__all__`` is pinned by a test.
"""

from __future__ import annotations

from eventwire.client._analytics import AnalyticsClient, SyncAnalyticsClient
from eventwire.client._backoff import (
    backoff,
    backoff_ceiling,
    is_testing,
    no_backoff,
    set_testing,
)
from eventwire.client._breaker import BreakerState, CircuitBreaker, Transition
from eventwire.client._channel import (
    channel_options,
    resilient_channel,
    resilient_sync_channel,
    targets,
)
from eventwire.client._config import ClientConfig
from eventwire.client._credentials import (
    call_credentials,
    channel_credentials,
    credentials,
    token_metadata,
)
from eventwire.client._deadline import Deadline, current_deadline, deadline_from, remaining_budget
from eventwire.client._exceptions import (
    CancelledRpcError,
    CircuitOpenError,
    ClientClosedError,
    DeadlineExceededError,
    EventRejectedError,
    EventwireError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcError,
    SpoolError,
    SpoolFullError,
    UnauthenticatedError,
    UnavailableError,
    map_rpc_error,
)
from eventwire.client._metrics import ClientMetrics
from eventwire.client._plans import PlansClient, SyncPlansClient
from eventwire.client._policy import (
    DEFAULT_ANALYTICS_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_TELEMETRY_TIMEOUT,
    CircuitBreakerPolicy,
    HedgingPolicy,
    RetryEvent,
    RetryPolicy,
    ThrottlePolicy,
)
from eventwire.client._streams import ResumableStream, SyncResumableStream
from eventwire.client._telemetry import SyncTelemetryClient, TelemetryClient
from eventwire.client._throttle import RetryThrottle
from eventwire.client.tracker import (
    DroppedEvent,
    DropReason,
    SyncTracker,
    Tracker,
    TrackerConfig,
    TrackerStats,
)

__all__ = [
    "DEFAULT_ANALYTICS_TIMEOUT",
    "DEFAULT_QUERY_TIMEOUT",
    "DEFAULT_TELEMETRY_TIMEOUT",
    "AnalyticsClient",
    "BreakerState",
    "CancelledRpcError",
    "CircuitBreaker",
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "ClientClosedError",
    "ClientConfig",
    "ClientMetrics",
    "Deadline",
    "DeadlineExceededError",
    "DropReason",
    "DroppedEvent",
    "EventRejectedError",
    "EventwireError",
    "HedgingPolicy",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "PlansClient",
    "ResourceExhaustedError",
    "ResumableStream",
    "RetryEvent",
    "RetryPolicy",
    "RetryThrottle",
    "RpcError",
    "SpoolError",
    "SpoolFullError",
    "SyncAnalyticsClient",
    "SyncPlansClient",
    "SyncResumableStream",
    "SyncTelemetryClient",
    "SyncTracker",
    "TelemetryClient",
    "ThrottlePolicy",
    "Tracker",
    "TrackerConfig",
    "TrackerStats",
    "Transition",
    "UnauthenticatedError",
    "UnavailableError",
    "backoff",
    "backoff_ceiling",
    "call_credentials",
    "channel_credentials",
    "channel_options",
    "credentials",
    "current_deadline",
    "deadline_from",
    "is_testing",
    "map_rpc_error",
    "no_backoff",
    "remaining_budget",
    "resilient_channel",
    "resilient_sync_channel",
    "set_testing",
    "targets",
    "token_metadata",
]
