"""How a tracker buffers, batches, spools and reaches its server: validated, frozen settings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import grpc

from eventwire.client._breaker import CircuitBreaker
from eventwire.client._config import ChannelOptions, ClientConfig
from eventwire.client._exceptions import EventwireError
from eventwire.client._policy import CircuitBreakerPolicy
from eventwire.client.tracker.framing import MAX_BATCH_EVENTS
from eventwire.client.tracker.spool import Spool
from eventwire.client.tracker.stats import DroppedEvent

__all__ = [
    "STREAM_BREAKER",
    "STREAM_CLIENT",
    "DropHook",
    "ErrorHook",
    "Limits",
    "TrackerConfig",
    "TrackerOptions",
    "stream_client",
]

DropHook = Callable[[DroppedEvent], None]
ErrorHook = Callable[[EventwireError], None]

STREAM_BREAKER: Final = CircuitBreakerPolicy(
    # One stream is one call for the breaker, so its window counts streams, not
    # events: open after 3 failed streams out of 10, probe once a second.
    # Pushback is not a failure here: the tracker already pauses and shrinks
    # its window for it, and an open circuit would only add a second pause.
    window_size=10,
    minimum_calls=3,
    open_duration=1.0,
    half_open_calls=1,
    failure_codes=CircuitBreakerPolicy().failure_codes - {grpc.StatusCode.RESOURCE_EXHAUSTED},
)
STREAM_CLIENT: Final = ClientConfig(retry=None, throttle=None, breaker=STREAM_BREAKER)
"""The tracker's channel by default: its stream breaker, nothing else."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a tracker's memory and batches; validated here, once."""

    max_queue_events: int = 100_000
    max_queue_bytes: int = 32 << 20
    max_batch_events: int = 1_000
    max_batch_bytes: int = 1 << 20
    window: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_batch_events must be in [1, {MAX_BATCH_EVENTS}]")
        # The server accepts 4 MiB messages; leave room for framing.
        if not 64 * 1024 <= self.max_batch_bytes <= 3 << 20:
            raise ValueError("max_batch_bytes must be in [64 KiB, 3 MiB]")
        if self.max_queue_events < self.max_batch_events:
            raise ValueError("max_queue_events must be at least max_batch_events")
        if self.max_queue_bytes < self.max_batch_bytes:
            raise ValueError("max_queue_bytes must be at least max_batch_bytes")
        if not 1 <= self.window <= 64:
            raise ValueError("window must be in [1, 64] batches")


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How a tracker buffers, batches, spools and retries. Validated on construction."""

    spool_dir: str | os.PathLike[str] | None = None
    """Directory for the disk spool (one per target and application); None: memory only."""
    max_queue_events: int = 100_000
    """Events memory may hold: queued, in flight and on their way to the spool together.
    Also the most a SIGKILL of the process can lose (everything else is in the spool)."""
    max_queue_bytes: int = 32 << 20
    """The same bound in encoded bytes."""
    max_batch_events: int = 1_000
    max_batch_bytes: int = 1 << 20
    flush_interval: float = 1.0
    """Seconds an event may wait in memory for its batch to fill up."""
    window: int = 8
    """Batches sent and not yet acknowledged, at most (the server admits 8 per stream)."""
    max_spool_bytes: int = 1 << 30
    spool_segment_bytes: int = 4 << 20
    spool_sync_interval: float = 0.05
    """Seconds between fsyncs of events written to the spool on memory overflow."""
    ack_timeout: float = 10.0
    """Seconds without any ack, while batches are unacknowledged, before the stream is
    abandoned as dead (a blackholed link shows no other symptom)."""
    max_retry_delay: float = 2.0
    """Longest pause between attempts to reach the server."""
    stream_idle_timeout: float = 30.0
    """Seconds an idle stream stays open before it is half-closed."""
    adopt_interval: float = 5.0
    """Seconds between looks for spools left by dead processes (e.g. forked children)."""
    atexit_timeout: float = 5.0
    """Seconds the interpreter's exit waits for the blocking tracker to deliver."""

    def __post_init__(self) -> None:
        self.limits()
        for name in (
            "flush_interval",
            "spool_sync_interval",
            "ack_timeout",
            "max_retry_delay",
            "stream_idle_timeout",
            "adopt_interval",
        ):
            value = getattr(self, name)
            if not 0 < value < 86_400:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not 0 <= self.atexit_timeout < 3600:
            raise ValueError("atexit_timeout must be in [0, 3600) seconds")
        self.new_spool()

    def limits(self) -> Limits:
        return Limits(
            self.max_queue_events,
            self.max_queue_bytes,
            self.max_batch_events,
            self.max_batch_bytes,
            self.window,
        )

    def new_spool(self) -> Spool | None:
        """The spool these settings describe (no I/O until it is used), or None."""
        if self.spool_dir is None:
            return None
        return Spool(
            Path(self.spool_dir),
            max_bytes=self.max_spool_bytes,
            segment_bytes=self.spool_segment_bytes,
        )


class TrackerOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Tracker` and :class:`SyncTracker`."""

    client: ClientConfig | None
    """The channel's :class:`ClientConfig`: its credentials, options, token, rng, tracing
    and metrics (the tracker is watched by them from the start), and its breaker, which
    counts one stream as one call. Default :data:`STREAM_CLIENT`, whose breaker
    (:data:`STREAM_BREAKER`) opens after 3 failed streams of 10 and does not count
    pushback; a config shared with an :class:`AnalyticsClient` brings that client's
    breaker policy instead. Timeouts, retries, throttling and hedging do not apply to a
    stream. ``breaker``, ``credentials``, ``token`` and ``channel_options`` are laid over it."""
    breaker: CircuitBreakerPolicy | CircuitBreaker | None
    credentials: grpc.ChannelCredentials | None
    token: str | None
    channel_options: ChannelOptions
    on_drop: DropHook | None
    on_error: ErrorHook | None


def stream_client(options: TrackerOptions) -> ClientConfig:
    """The tracker's channel configuration: ``client`` with the shorthand options over it."""
    unknown = set(options) - set(TrackerOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown tracker option(s): {', '.join(sorted(unknown))}")
    base = options.get("client") or STREAM_CLIENT
    if not isinstance(base, ClientConfig):
        raise TypeError(f"client must be a ClientConfig, got {base!r}")
    shorthand: dict[str, Any] = {
        "breaker": options.get("breaker"),
        "credentials": options.get("credentials"),
        "token": options.get("token"),
        "options": options.get("channel_options"),
    }
    # None means "not given" here (as it always has for these four).
    given = {name: value for name, value in shorthand.items() if value is not None}
    return dataclasses.replace(base, **given) if given else base
