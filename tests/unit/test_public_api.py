"""The public names are a promise: adding one is a decision, removing one breaks users."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

import eventwire
import eventwire.client

CLIENT = [
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

TOP_LEVEL = [
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


def ruff_order(names: list[str]) -> list[str]:
    # RUF022's "isort-style" order, which make test also checks: CONSTANTS, Classes, functions.
    return sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))


@pytest.mark.parametrize(
    ("module", "pinned"),
    [(eventwire.client, CLIENT), (eventwire, TOP_LEVEL)],
    ids=["client", "top"],
)
def test_public_names_are_pinned_sorted_and_importable(module: object, pinned: list[str]) -> None:
    exported = getattr(module, "__all__")  # noqa: B009 - the attribute under test
    assert exported == pinned
    assert exported == ruff_order(exported)
    name = getattr(module, "__name__")  # noqa: B009
    fresh = importlib.import_module(name)
    for public in exported:
        value = getattr(fresh, public)
        assert value is not None, public
        # Defined by eventwire (or a constant): nothing re-exported from a dependency by accident.
        defined_in = getattr(value, "__module__", "eventwire")
        assert defined_in.startswith("eventwire"), (public, defined_in)


def test_the_top_level_names_are_the_client_s_own() -> None:
    for public in TOP_LEVEL:
        if public != "__version__":
            assert getattr(eventwire, public) is getattr(eventwire.client, public)


def test_version_matches_the_package_metadata() -> None:
    assert eventwire.__version__ == importlib.metadata.version("eventwire")
