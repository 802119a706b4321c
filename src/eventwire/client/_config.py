"""One frozen :class:`ClientConfig` carries every option of a client, channel or tracker stream.

Build it once and hand it to anything that opens a channel::

    config = ClientConfig(timeout=1.0, token=token, metrics=ClientMetrics(REGISTRY))
    analytics = AnalyticsClient(target, config)
    tracker = Tracker(target, client=config)
    fast = dataclasses.replace(config, timeout=0.05)   # validated again

The constructors' keyword arguments stay as a shorthand, and are laid over the
config given (or the default one) in one place, :func:`configure`:
``AnalyticsClient(target, timeout=5)`` is ``AnalyticsClient(target, ClientConfig(timeout=5))``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import grpc
from opentelemetry.trace import TracerProvider

from eventwire.client._breaker import CircuitBreaker
from eventwire.client._credentials import token_metadata
from eventwire.client._metrics import ClientMetrics
from eventwire.client._policy import (
    CircuitBreakerPolicy,
    HedgingPolicy,
    RetryEvent,
    RetryPolicy,
    ThrottlePolicy,
)
from eventwire.client._throttle import RetryThrottle

__all__ = ["BARE", "ChannelOptions", "ClientConfig", "ClientOptions", "Metadata", "configure"]

ChannelOptions = Sequence[tuple[str, Any]]
Metadata = tuple[tuple[str, str | bytes], ...]


# Policies are frozen: one instance serves as every config's default.
_RETRY: Final = RetryPolicy()
_BREAKER: Final = CircuitBreakerPolicy()
_THROTTLE: Final = ThrottlePolicy()


def _is(name: str, value: object, *types: type) -> None:
    if value is not None and not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise TypeError(f"{name} must be {names} or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a client reaches its server: deadlines, policies, credentials, instrumentation.

    Policies default to :class:`RetryPolicy`, :class:`CircuitBreakerPolicy` and
    :class:`ThrottlePolicy` with their defaults; None turns one off, and a
    :class:`CircuitBreaker` or :class:`RetryThrottle` object shares its state
    between every client given it. Validated on construction, so also by
    :func:`dataclasses.replace`.

    What each user takes: the four clients, everything; :func:`resilient_channel`,
    everything (its own default, :data:`BARE`, has every policy off);
    :class:`Tracker`, for its one long-lived stream, ``breaker``, ``credentials``,
    ``options``, ``token``, ``rng``, ``tracer_provider`` and ``metrics``: a stream
    has no deadline and is never retried (the tracker resends what is unacknowledged).
    """

    timeout: float | None = None
    """Seconds per call, every attempt and sleep included. None: the client's default
    (200 ms for analytics, 2 s for telemetry); no deadline for resilient_channel."""
    retry: RetryPolicy | None = _RETRY
    breaker: CircuitBreakerPolicy | CircuitBreaker | None = _BREAKER
    """A policy gets a breaker of its own per client (named after the target)."""
    throttle: ThrottlePolicy | RetryThrottle | None = _THROTTLE
    hedging: HedgingPolicy | None = None
    """Opt-in, for idempotent unary calls (not on resilient_sync_channel)."""
    on_retry: Callable[[RetryEvent], None] | None = None
    """Called before every retry's sleep; an exception in it is logged, never raised."""
    credentials: grpc.ChannelCredentials | None = None
    """TLS (see :func:`credentials`); None: plaintext."""
    options: ChannelOptions = ()
    """gRPC channel arguments, laid over eventwire's (see :func:`channel_options`)."""
    token: str | None = dataclasses.field(default=None, repr=False)
    """Sent as ``authorization: Bearer TOKEN`` with every call, TLS or not."""
    rng: random.Random | None = None
    """The source of backoff jitter; seed one for reproducible sleeps."""
    tracer_provider: TracerProvider | None = None
    """Spans per call and per attempt; None: no tracing work at all."""
    metrics: ClientMetrics | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float)
            and math.isfinite(self.timeout)
            and self.timeout > 0
        ):
            raise ValueError(f"timeout must be positive seconds or None, got {self.timeout!r}")
        _is("retry", self.retry, RetryPolicy)
        _is("breaker", self.breaker, CircuitBreakerPolicy, CircuitBreaker)
        _is("throttle", self.throttle, ThrottlePolicy, RetryThrottle)
        _is("hedging", self.hedging, HedgingPolicy)
        _is("credentials", self.credentials, grpc.ChannelCredentials)
        _is("rng", self.rng, random.Random)
        _is("metrics", self.metrics, ClientMetrics)
        if self.on_retry is not None and not callable(self.on_retry):
            raise TypeError(f"on_retry must be callable or None, got {self.on_retry!r}")
        if self.tracer_provider is not None and not hasattr(self.tracer_provider, "get_tracer"):
            raise TypeError(
                f"tracer_provider must be a TracerProvider, got {self.tracer_provider!r}"
            )
        options = tuple((str(key), value) for key, value in self.options)
        object.__setattr__(self, "options", options)
        if self.token == "":
            object.__setattr__(self, "token", None)
        elif self.token is not None:
            token_metadata(self.token)  # refuses what cannot be a header, without echoing it

    @property
    def metadata(self) -> Metadata | None:
        """The call metadata every call carries (the bearer token), or None."""
        return None if self.token is None else token_metadata(self.token)


class ClientOptions(TypedDict, total=False):
    """:class:`ClientConfig`'s fields as keyword arguments of the clients and channels."""

    timeout: float | None
    retry: RetryPolicy | None
    breaker: CircuitBreakerPolicy | CircuitBreaker | None
    throttle: ThrottlePolicy | RetryThrottle | None
    hedging: HedgingPolicy | None
    on_retry: Callable[[RetryEvent], None] | None
    credentials: grpc.ChannelCredentials | None
    options: ChannelOptions
    token: str | None
    rng: random.Random | None
    tracer_provider: TracerProvider | None
    metrics: ClientMetrics | None


DEFAULT: Final = ClientConfig()
BARE: Final = ClientConfig(retry=None, breaker=None, throttle=None)
"""Every policy off: :func:`resilient_channel`'s default, whose policies are opt-in."""


def configure(
    config: ClientConfig | None, options: Mapping[str, Any], *, base: ClientConfig = DEFAULT
) -> ClientConfig:
    """``config`` (else ``base``) with the keyword ``options`` laid over it: the one place
    keyword arguments become a :class:`ClientConfig`."""
    if config is not None and not isinstance(config, ClientConfig):
        raise TypeError(f"config must be a ClientConfig, got {config!r}")
    chosen = base if config is None else config
    unknown = set(options) - set(ClientOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown client option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(chosen, **options) if options else chosen
