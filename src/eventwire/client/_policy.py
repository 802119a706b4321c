"""The client's policies: defined in :mod:`eventwire.resilience.policy`, shared with the
destinations' relays."""

from __future__ import annotations

from eventwire.resilience.policy import (
    DEFAULT_ANALYTICS_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_TELEMETRY_TIMEOUT,
    CircuitBreakerPolicy,
    HedgingPolicy,
    Jitter,
    RetryEvent,
    RetryPolicy,
    ThrottlePolicy,
)

__all__ = [
    "DEFAULT_ANALYTICS_TIMEOUT",
    "DEFAULT_QUERY_TIMEOUT",
    "DEFAULT_TELEMETRY_TIMEOUT",
    "CircuitBreakerPolicy",
    "HedgingPolicy",
    "Jitter",
    "RetryEvent",
    "RetryPolicy",
    "ThrottlePolicy",
]
