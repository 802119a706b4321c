"""Resilience policies: small frozen dataclasses, validated on construction.

Vary them with :func:`dataclasses.replace`, e.g.
``dataclasses.replace(RetryPolicy(), max_attempts=5)``; the result is validated again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final, Literal

import grpc

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

DEFAULT_ANALYTICS_TIMEOUT: Final = 0.2
"""Seconds an analytics call may take, all attempts included (from the seeds)."""
DEFAULT_TELEMETRY_TIMEOUT: Final = 2.0
"""Seconds a telemetry call may take, all attempts included (from the seeds)."""
DEFAULT_QUERY_TIMEOUT: Final = 10.0
"""Seconds a QueryEvents call may take unless the client's config sets a timeout: an
aggregate over a day of a million events takes about a second, far beyond the
200 ms meant for writes."""

Jitter = Literal["full", "equal", "decorrelated", "none"]

# Any set type is accepted (``{StatusCode.UNAVAILABLE}``); __post_init__ stores a
# frozenset, so policies stay immutable and hashable.
_Codes = AbstractSet[grpc.StatusCode]


def _codes(values: Iterable[grpc.StatusCode]) -> frozenset[grpc.StatusCode]:
    codes = frozenset(values)
    for code in codes:
        if not isinstance(code, grpc.StatusCode):
            raise TypeError(f"status codes must be grpc.StatusCode, got {code!r}")
    if grpc.StatusCode.OK in codes:
        raise ValueError("OK is not a failure")
    return codes


def _finite(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how fast to retry a failed idempotent call.

    The n-th retry (n = 1, 2, ...) waits ``backoff(n)`` seconds, see
    :func:`eventwire.client.backoff`. The call's single deadline covers every
    attempt and every sleep: a sleep that would not end before the deadline is
    not started, and the last error is raised at once instead. The
    destinations' relays use the same policy between delivery attempts.
    """

    max_attempts: int = 4
    """Attempts in total, the first included (gRPC A6 caps this at 5)."""
    initial_backoff: float = 0.025
    """Seconds; the ceiling of the first retry's sleep."""
    max_backoff: float = 1.0
    """Seconds; no sleep is longer."""
    multiplier: float = 2.0
    """Growth of the sleep ceiling per retry."""
    jitter: Jitter = "full"
    """``full``: uniform in [0, ceiling]; ``equal``: [ceiling/2, ceiling];
    ``decorrelated``: uniform in [initial, 3 * previous sleep], capped; ``none``: the ceiling."""
    retryable_codes: _Codes = field(
        default=frozenset(
            {
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                # Only ever the server's or the transport's: a caller's own
                # cancellation is asyncio's CancelledError and never retried. A
                # call caught by a server's shutdown, or by grpcio's defence
                # against a stream flood, is ended CANCELLED without being served.
                grpc.StatusCode.CANCELLED,
            }
        )
    )
    """Status codes worth another attempt (idempotent calls only). Never INVALID_ARGUMENT."""
    total_timeout: float | None = None
    """Seconds for all attempts together; None: the call's deadline alone bounds them."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 10:
            raise ValueError(f"max_attempts must be in [1, 10], got {self.max_attempts}")
        _finite("initial_backoff", self.initial_backoff, positive=True)
        _finite("max_backoff", self.max_backoff, positive=True)
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be >= initial_backoff")
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if self.jitter not in ("full", "equal", "decorrelated", "none"):
            raise ValueError(f"jitter must be full, equal, decorrelated or none: {self.jitter!r}")
        codes = _codes(self.retryable_codes)
        if grpc.StatusCode.INVALID_ARGUMENT in codes:
            raise ValueError("INVALID_ARGUMENT is never retryable: the same request fails again")
        object.__setattr__(self, "retryable_codes", codes)
        if self.total_timeout is not None:
            _finite("total_timeout", self.total_timeout, positive=True)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to ``on_retry`` hooks just before a retry's sleep."""

    method: str
    retry: int
    """1 for the first retry (the second attempt)."""
    code: grpc.StatusCode
    """Status of the attempt that failed."""
    delay: float
    """Seconds the client waits before the retry."""
    pushback: bool
    """True when ``delay`` came from the server's ``grpc-retry-pushback-ms``."""


_DEFAULT_FAILURES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
    }
)


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    """When to stop calling a backend for a while, and how to try it again.

    Defaults, next to resilience4j's (which are tuned for slower, longer-lived calls):

    ==========================  ===========  ==================
    setting                     eventwire    resilience4j
    ==========================  ===========  ==================
    window                      count        COUNT_BASED
    window_size                 20 calls     100 calls
    minimum_calls               10           100
    failure_rate_threshold      0.5          50 %
    slow_call_rate_threshold    1.0          100 %
    slow_call_duration          None (off)   60 s
    open_duration               5 s          60 s
    half_open_calls             3            10
    ==========================  ===========  ==================
    """

    window: Literal["count", "time"] = "count"
    """``count``: the last ``window_size`` calls; ``time``: calls of the last ``window_size`` s."""
    window_size: float = 20
    minimum_calls: int = 10
    """No verdict before the window holds this many calls."""
    failure_rate_threshold: float = 0.5
    """Open when at least this share of the window failed."""
    slow_call_rate_threshold: float = 1.0
    """Open when at least this share of the window was slower than ``slow_call_duration``."""
    slow_call_duration: float | None = None
    """Seconds after which a call counts as slow; None: no call is slow."""
    open_duration: float = 5.0
    """Seconds calls fail fast before trial calls are let through."""
    half_open_calls: int = 3
    """Trial calls let through while half-open; their outcome closes or re-opens the circuit."""
    failure_codes: _Codes = field(default=_DEFAULT_FAILURES)
    """Status codes that count as failures. INVALID_ARGUMENT never does."""

    def __post_init__(self) -> None:
        if self.window not in ("count", "time"):
            raise ValueError(f"window must be 'count' or 'time', got {self.window!r}")
        _finite("window_size", self.window_size, positive=True)
        if self.window == "count" and self.window_size != int(self.window_size):
            raise ValueError("a count window's size is a whole number of calls")
        if self.minimum_calls < 1:
            raise ValueError("minimum_calls must be >= 1")
        if self.window == "count" and self.minimum_calls > self.window_size:
            raise ValueError("minimum_calls cannot exceed a count window's size")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.slow_call_duration is not None:
            _finite("slow_call_duration", self.slow_call_duration, positive=True)
        _finite("open_duration", self.open_duration, positive=True)
        if self.half_open_calls < 1:
            raise ValueError("half_open_calls must be >= 1")
        codes = _codes(self.failure_codes)
        if grpc.StatusCode.INVALID_ARGUMENT in codes:
            raise ValueError("INVALID_ARGUMENT is the caller's fault, never the backend's")
        object.__setattr__(self, "failure_codes", codes)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Retry throttling per target, as gRPC A6 ``retryThrottling``.

    A token bucket starts full at ``max_tokens``. Every failed attempt takes one
    token, every success gives back ``token_ratio``. While the bucket holds no
    more than half of ``max_tokens``, failed calls are not retried (first
    attempts and hedges still go out), so a dead backend sees roughly one
    attempt per call instead of ``max_attempts``.
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.max_tokens <= 1000:
            raise ValueError("max_tokens must be in (0, 1000]")
        if not 0 < self.token_ratio <= 1:
            raise ValueError("token_ratio must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class HedgingPolicy:
    """Opt-in hedging for idempotent unary calls (clients and resilient_channel).

    The first attempt goes out at once, another every ``delay`` seconds while
    none has succeeded, up to ``max_attempts`` in flight in total. The first
    success wins and the others are cancelled. A failure with a code in
    ``non_fatal_codes`` sends the next hedge at once; any other failure ends the call.
    """

    max_attempts: int = 2
    delay: float = 0.05
    non_fatal_codes: _Codes = field(default=frozenset({grpc.StatusCode.UNAVAILABLE}))

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be in [2, 5]: one attempt is not hedging")
        _finite("delay", self.delay)
        object.__setattr__(self, "non_fatal_codes", _codes(self.non_fatal_codes))
