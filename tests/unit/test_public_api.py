"""The top-level names are a promise: adding one is a decision, removing one breaks users."""

from __future__ import annotations

import importlib.metadata

import eventwire


def test_public_names_are_pinned_and_sorted() -> None:
    assert eventwire.__all__ == [
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
    # (Its order is checked by ruff's RUF022, which make test runs.)
    for name in eventwire.__all__:
        assert getattr(eventwire, name) is not None


def test_version_matches_the_package_metadata() -> None:
    assert eventwire.__version__ == importlib.metadata.version("eventwire")
