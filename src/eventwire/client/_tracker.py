"""Buffered, acknowledged delivery: :class:`Tracker` and its blocking twin, :class:`SyncTracker`.

::

    track() ──► memory queue (bounded: events and bytes) ──► batches ──► IngestEvents stream
       │              │ full, or the server unreachable            ▲   (window of unacked
       │              ▼                                            │    batches, resent
       └─ full ─► disk spool (bounded, fsynced, crash-safe) ───────┘    after a break)

``track()`` never waits for the network and never raises on network trouble: it
encodes the event, gives it a UUIDv7 ``event_id``, and queues it. A background
task on the tracker's event loop sends batches over one bidirectional
``IngestEvents`` stream, keeps up to ``window`` batches unacknowledged, and
settles each batch when its ack arrives. When the stream breaks, every unacked
batch is sent again on the next stream; the server stores each ``event_id``
once, so a resend is counted as a duplicate, never stored twice.

When the server stays unreachable (two failed streams in a row, the circuit
breaker open, or no ack for ``ack_timeout``), or when memory is full, what
memory holds is written to the spool; the spool is replayed, oldest first,
before anything newer leaves memory, also by the next process when this one
dies. Events are dropped only when memory AND the spool are full (or the spool
cannot be written): the new event is refused, counted in ``dropped`` and passed
to ``on_drop``; events already accepted are never thrown out to make room.

The blocking twin runs the same :class:`Tracker` on a private event loop in a
daemon thread: no logic is written twice. Bookkeeping that needs no I/O lives in
:mod:`eventwire.client._pipeline`, the disk format in :mod:`eventwire.client._spool`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import functools
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc

from eventwire._ids import uuid7
from eventwire.api import analytics_pb2
from eventwire.client._backoff import backoff
from eventwire.client._breaker import CircuitBreaker
from eventwire.client._channel import resilient_channel
from eventwire.client._config import ChannelOptions
from eventwire.client._credentials import token_metadata
from eventwire.client._exceptions import (
    CircuitOpenError,
    EventwireError,
    map_rpc_error,
    parse_pushback,
)
from eventwire.client._pipeline import (
    MAX_EVENT_BYTES,
    Batch,
    Limits,
    Pipeline,
    Runs,
    TrackerStats,
    event_id_of,
    frame_event,
)
from eventwire.client._policy import CircuitBreakerPolicy, RetryPolicy
from eventwire.client._spool import Spool, SpoolError, SpoolFullError

__all__ = [
    "DropReason",
    "DroppedEvent",
    "EventRejectedError",
    "SyncTracker",
    "Tracker",
    "TrackerConfig",
    "TrackerStats",
]

log = logging.getLogger("eventwire.client")

T = TypeVar("T")

INGEST_METHOD: Final = "/analytics.AnalyticsService/IngestEvents"

_SPILL_CHUNK_BYTES: Final = 1 << 20
_FLUSH_RECHECK: Final = 0.1
_STOP_TIMEOUT: Final = 5.0


class DropReason:
    """Why an event was dropped (``DroppedEvent.reason``)."""

    MEMORY_FULL: Final = "memory_full"
    """Memory is full and no spool is configured."""
    SPOOL_FULL: Final = "spool_full"
    """Memory is full and the spool is at ``max_spool_bytes`` or its disk is full."""
    SPOOL_ERROR: Final = "spool_error"
    """Memory is full and the spool cannot be written (I/O error, permissions)."""
    SPOOL_DAMAGED: Final = "spool_damaged"
    """A spooled record was found corrupted on disk when read back."""
    CLOSED: Final = "closed"
    """``track()`` after ``close()``."""
    CLOSE_TIMEOUT: Final = "close_timeout"
    """``close()`` timed out with events in memory and no spool to keep them."""
    FORK_WITHOUT_SPOOL: Final = "fork_without_spool"
    """A forked child cannot use gRPC (the parent had) and has no spool to keep events in."""


@dataclass(frozen=True, slots=True)
class DroppedEvent:
    """Passed to ``on_drop``: an event that will not be delivered."""

    event_id: str
    """Empty when the event could not be decoded (``spool_damaged``)."""
    reason: str
    """One of the :class:`DropReason` values."""


class EventRejectedError(EventwireError):
    """The server (or the tracker, for oversize events) refused one event; it is never retried."""

    def __init__(self, event_id: str, violations: Sequence[tuple[str, str]]) -> None:
        self.event_id = event_id
        self.violations = list(violations)
        """``(field, description)`` pairs."""
        text = "; ".join(f"{f}: {d}" for f, d in self.violations)
        super().__init__(f"event {event_id or '(no id)'} rejected: {text}")


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How a tracker buffers, batches, spools and retries. Validated on construction."""

    spool_dir: str | os.PathLike[str] | None = None
    """Directory for the disk spool (one per target and application); None: memory only."""
    max_queue_events: int = 100_000
    """Events memory may hold, queued and in flight together."""
    max_queue_bytes: int = 32 << 20
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
        Limits(
            self.max_queue_events,
            self.max_queue_bytes,
            self.max_batch_events,
            self.max_batch_bytes,
            self.window,
        )
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
        if self.spool_dir is not None:
            Spool(
                self.spool_dir,
                max_bytes=self.max_spool_bytes,
                segment_bytes=self.spool_segment_bytes,
            )

    def limits(self) -> Limits:
        return Limits(
            self.max_queue_events,
            self.max_queue_bytes,
            self.max_batch_events,
            self.max_batch_bytes,
            self.window,
        )


DropHook = Callable[[DroppedEvent], None]
ErrorHook = Callable[[EventwireError], None]


def _default_breaker(target: str) -> CircuitBreaker:
    # One stream is one call for the breaker, so its window counts streams, not
    # events: open after 3 failed streams out of 10, probe once a second.
    # Pushback is not a failure here: the tracker already pauses and shrinks
    # its window for it, and an open circuit would only add a second pause.
    defaults = CircuitBreakerPolicy()
    policy = CircuitBreakerPolicy(
        window_size=10,
        minimum_calls=3,
        open_duration=1.0,
        half_open_calls=1,
        failure_codes=defaults.failure_codes - {grpc.StatusCode.RESOURCE_EXHAUSTED},
    )
    return CircuitBreaker(policy, name=target)


@dataclass(slots=True)
class _Outcome:
    ok: bool = False
    progress: bool = False
    code: grpc.StatusCode | None = None
    delay: float | None = None
    """A pause the server or breaker asked for (pushback, circuit open)."""
    unreachable: bool = False
    pushback: bool = False


# Trackers not closed yet, held strongly: one that goes out of scope with
# events queued must still be flushed at exit, like a running thread is joined.
_LIVE: set[Any] = set()


# In a forked child: the parent's gRPC channel, event loop and thread objects.
# Finalizing them would call into gRPC's core, which does not survive fork()
# (it hangs or crashes the child), so they are kept, unused, until exit.
_INHERITED: list[object] = []


def _reinit_after_fork() -> None:
    for owner in list(_LIVE):
        try:
            owner._after_fork_in_child()
        except Exception:
            log.exception("eventwire tracker: re-initialisation after fork failed")


def _exit_all() -> None:
    for owner in list(_LIVE):
        try:
            owner._at_exit()
        except Exception:
            log.exception("eventwire tracker: flush at exit failed")


os.register_at_fork(after_in_child=_reinit_after_fork)
# Registered at import, after grpc's own handlers: atexit runs ours first, while
# grpc still works.
atexit.register(_exit_all)


def _timestamp_ms(timestamp: int | float | dt.datetime | None) -> int:
    if timestamp is None:
        return time.time_ns() // 1_000_000
    if isinstance(timestamp, dt.datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp datetimes must be timezone-aware")
        return int(timestamp.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(f"timestamp must be epoch milliseconds or a datetime, got {timestamp!r}")
    return int(timestamp)


class Tracker:
    """Buffered, acknowledged, spool-backed delivery of analytics events (async).

    Use it as ``async with Tracker(target, TrackerConfig(spool_dir=...)) as tracker:``
    or call :meth:`start` and :meth:`close`. :meth:`track` may be called from any
    thread; the tracker's work runs on the event loop it was started on.
    """

    def __init__(
        self,
        target: str,
        config: TrackerConfig | None = None,
        *,
        breaker: CircuitBreakerPolicy | CircuitBreaker | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel_options: ChannelOptions = (),
        on_drop: DropHook | None = None,
        on_error: ErrorHook | None = None,
        _managed: bool = False,
    ) -> None:
        self.target = target
        # Sent with every stream when the server checks tokens (--auth-tokens);
        # as metadata, not call credentials, so that plaintext channels work too.
        self._metadata = token_metadata(token) if token else None
        self.config = config or TrackerConfig()
        self._limits = self.config.limits()
        self._core = Pipeline(self._limits)
        if isinstance(breaker, CircuitBreakerPolicy):
            breaker = CircuitBreaker(breaker, name=target)
        self._breaker = breaker or _default_breaker(target)
        self._credentials = credentials
        self._channel_options = channel_options
        self._on_drop = on_drop
        self._on_error = on_error
        self._retry = RetryPolicy(
            initial_backoff=0.05, max_backoff=self.config.max_retry_delay, jitter="equal"
        )
        # Jitter, not cryptography.
        self._rng = random.Random()  # noqa: S311
        self._spool = self._new_spool()
        self._pid = os.getpid()
        self._init_runtime()
        self._spool_only = False
        self._managed = _managed
        if not _managed:
            _LIVE.add(self)

    def _new_spool(self) -> Spool | None:
        cfg = self.config
        if cfg.spool_dir is None:
            return None
        return Spool(
            Path(cfg.spool_dir),
            max_bytes=cfg.max_spool_bytes,
            segment_bytes=cfg.spool_segment_bytes,
        )

    def _init_runtime(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._sync_wake: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: asyncio.Future[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._ingest: Any = None
        self._grpc_started = False
        self._closed = False
        self._close_result: bool | None = None
        self._flush_target = 0
        self._last_ack = 0.0
        self._sync_requested = False
        self._spool_failing = False
        self._final_spool: tuple[int, int] | None = None
        # Congestion window (AIMD): halved on every pushback, grown by one per
        # window's worth of acks, so a struggling server gets fewer batches at
        # once rather than the same burst again after each pause.
        self._cwnd = self._limits.window
        self._acks_in_window = 0
        self._stream = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- public API ------------------------------------------------------------------

    def track(
        self,
        event_name: str,
        *,
        user_id: str = "",
        properties: Mapping[str, str] | None = None,
        timestamp: int | float | dt.datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue one event; returns its ``event_id`` at once.

        Never waits for the network and never raises because of it. ``timestamp``
        is epoch milliseconds (or an aware datetime) and defaults to now, so a
        spooled event keeps the time it happened. Wrong argument types raise
        ``TypeError``; content the server would refuse is reported to
        ``on_error`` as :class:`EventRejectedError` (and counted as rejected).
        """
        if os.getpid() != self._pid:
            self._after_fork_in_child()
        eid = event_id or uuid7()
        encoded = analytics_pb2.TrackEventRequest(
            event_name=event_name,
            user_id=user_id,
            timestamp=_timestamp_ms(timestamp),
            properties=properties,
            event_id=eid,
        ).SerializeToString()
        if self._closed:
            self._core.count_drop()
            self._drop(eid, DropReason.CLOSED)
            return eid
        if len(encoded) > MAX_EVENT_BYTES:
            self._core.count_local_rejection()
            self._error(
                EventRejectedError(
                    eid,
                    [
                        (
                            "event",
                            f"encoded event is {len(encoded)} bytes; at most {MAX_EVENT_BYTES}",
                        )
                    ],
                )
            )
            return eid
        item = frame_event(encoded)
        if self._spool_only:
            self._track_to_spool(eid, item)
            return eid
        offer = self._core.offer(item)
        if offer.wake:
            self._signal()
        if offer.queued:
            if not self._tasks and self._loop is None and not self._managed:
                self._autostart()
            return eid
        self._overflow(eid, item, offer.epoch)
        return eid

    async def start(self) -> None:
        """Bind to the running event loop, adopt leftover spools, and start delivering."""
        if self._tasks or self._closed:
            return
        if self._spool_only:
            return
        if self._starting is not None:
            await asyncio.shield(self._starting)
            return
        loop = asyncio.get_running_loop()
        self._starting = loop.create_future()
        try:
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._wake = asyncio.Event()
            self._sync_wake = asyncio.Event()
            self._settled = asyncio.Event()
            await self._adopt()
            self._channel = resilient_channel(
                self.target,
                breaker=self._breaker,
                credentials=self._credentials,
                options=self._channel_options,
            )
            self._grpc_started = True
            self._ingest = self._channel.stream_stream(
                INGEST_METHOD,
                request_serializer=None,
                response_deserializer=analytics_pb2.IngestAck.FromString,
            )
            self._tasks = [
                loop.create_task(self._run(), name="eventwire-tracker"),
                loop.create_task(self._sync_loop(), name="eventwire-tracker-fsync"),
            ]
            if self._spool is not None:
                self._tasks.append(loop.create_task(self._adopt_loop(), name="eventwire-adopt"))
            # Anything queued before start() is due now.
            self._wake.set()
        finally:
            self._starting.set_result(None)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked before this call is acknowledged, rejected or dropped.

        Returns False if ``timeout`` seconds passed first (events stay queued or
        spooled and keep being delivered).
        """
        if self._spool_only:
            await self._offload(self._sync_spool_quietly)
            return self._core.outstanding_total() == 0
        target = self._core.new_epoch()
        if self._core.settled_through(target):
            return True
        if not self._tasks and not self._closed:
            await self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flush_target = max(self._flush_target, target)
        if self._wake is not None:
            self._wake.set()
        settled = self._settled
        while not self._core.settled_through(target):
            remaining = _FLUSH_RECHECK if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or settled is None or not self._tasks:
                return False
            settled.clear()
            if self._core.settled_through(target):
                break
            # A bounded wait: drops on other threads settle events without a wake-up.
            await _wait(settled, min(remaining, _FLUSH_RECHECK))
        return True

    async def close(self, timeout: float | None = 10.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop; returns True if everything was acked.

        Whatever is still in memory then goes to the spool (when there is one)
        for the next run to deliver; without a spool it is dropped and reported.
        Later ``track()`` calls drop their events (``DropReason.CLOSED``).
        """
        if self._close_result is not None:
            return self._close_result
        if self._spool_only:
            self._closed = True
            await self._offload(self._close_spool_only)
            self._close_result = False
            return False
        delivered = await self.flush(timeout)
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._offload(self._keep_leftovers)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        _LIVE.discard(self)
        self._close_result = delivered and self._core.outstanding_total() == 0
        return self._close_result

    @property
    def stats(self) -> TrackerStats:
        spool = self._spool
        if self._final_spool is not None:
            events, size = self._final_spool
        elif spool is not None:
            events, size = spool.events, spool.nbytes
        else:
            events, size = 0, 0
        return self._core.stats(events, size)

    @property
    def spool_lane(self) -> Path | None:
        """The spool directory this process writes to, once it has written one."""
        return self._spool.lane if self._spool is not None else None

    async def __aenter__(self) -> Tracker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- track() helpers (any thread) ----------------------------------------------------

    def _autostart(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # queued; delivered once start() runs
        task = loop.create_task(self.start())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)

    def _signal_sync(self) -> None:
        if self._sync_requested:
            return
        self._sync_requested = True
        loop, wake = self._loop, self._sync_wake
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _overflow(self, eid: str, item: bytes, epoch: int) -> None:
        """Memory is full: the event goes straight to the spool, or is dropped by policy."""
        spool = self._spool
        if spool is None:
            self._core.settle_unqueued(epoch, spooled=False)
            self._drop(eid, DropReason.MEMORY_FULL)
            return
        try:
            spool.append([item], [(epoch, 1)])
        except SpoolError as exc:
            self._core.settle_unqueued(epoch, spooled=False)
            self._spool_failed(exc)
            reason = (
                DropReason.SPOOL_FULL if isinstance(exc, SpoolFullError) else DropReason.SPOOL_ERROR
            )
            self._drop(eid, reason)
            return
        self._spool_failing = False
        self._core.settle_unqueued(epoch, spooled=True)
        self._signal_sync()

    def _track_to_spool(self, eid: str, item: bytes) -> None:
        """A forked child that cannot use gRPC: every event goes to its own spool lane."""
        core = self._core
        with core.lock:
            core.counters.tracked += 1
            epoch = core.epoch
            core.outstanding[epoch] = core.outstanding.get(epoch, 0) + 1
        if self._spool is None:
            core.settle_unqueued(epoch, spooled=False)
            self._drop(eid, DropReason.FORK_WITHOUT_SPOOL)
            return
        self._overflow(eid, item, epoch)

    def _spool_failed(self, exc: SpoolError) -> None:
        self._core.count("spool_errors")
        # Once per failure streak: a full disk would otherwise report every event.
        if not self._spool_failing:
            self._spool_failing = True
            log.warning("eventwire tracker: spool write failed: %s", exc)
            self._error(exc)

    def _drop(self, eid: str, reason: str) -> None:
        hook = self._on_drop
        if hook is None:
            return
        try:
            hook(DroppedEvent(eid, reason))
        except Exception:
            log.exception("eventwire tracker: on_drop hook failed")

    def _error(self, exc: EventwireError) -> None:
        hook = self._on_error
        if hook is None:
            return
        try:
            hook(exc)
        except Exception:
            log.exception("eventwire tracker: on_error hook failed")

    # -- the background task (the tracker's loop) ------------------------------------------

    @staticmethod
    async def _offload(fn: Callable[..., T], *args: Any) -> T:
        """Run blocking spool work in a thread; once started it finishes, even on cancel.

        Its effects on the pipeline are applied inside ``fn``, so a cancelled
        caller (``close()`` stopping the task) cannot lose or double them.
        """
        loop = asyncio.get_running_loop()
        try:
            job = loop.run_in_executor(None, functools.partial(fn, *args))
        except RuntimeError:
            # The interpreter is exiting (atexit): no new threads; block briefly instead.
            return fn(*args)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait({job})
            raise

    async def _adopt(self) -> None:
        if self._spool is None:
            return
        found: int = await self._offload(self._adopt_now)
        if found and self._wake is not None:
            self._wake.set()

    async def _adopt_loop(self) -> None:
        # Its own task: a long-lived stream must not keep a dead process's
        # spool (a forked child's, say) waiting.
        while True:
            await asyncio.sleep(self.config.adopt_interval)
            await self._adopt()

    def _adopt_now(self) -> int:
        spool = self._spool
        if spool is None:
            return 0
        try:
            found = spool.adopt()
        except SpoolError as exc:
            self._spool_failed(exc)
            return 0
        if found:
            self._core.recovered(found)
            log.info("eventwire tracker: replaying %d spooled events", found)
        return found

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self._core.spill_requested:
                    await self._spill(include_unacked=True)
                due = self._work_due(time.monotonic())
                if due is None or due > 0:
                    await self._sleep(self.config.stream_idle_timeout if due is None else due)
                    continue
                outcome = await self._session()
                if outcome.ok:
                    failures = 0
                    continue
                failures = 1 if outcome.progress else failures + 1
                if outcome.unreachable or (failures >= 2 and not outcome.pushback):
                    await self._spill(include_unacked=True)
                delay = outcome.delay
                if delay is None:
                    delay = backoff(self._retry, failures, self._rng.random())
                await self._sleep(delay, until_elapsed=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not stop delivery for good: log it, pause, go on.
                log.exception("eventwire tracker: unexpected error; continuing")
                await asyncio.sleep(self.config.max_retry_delay)

    def _work_due(self, now: float) -> float | None:
        if self._core.has_unacked():
            return 0.0
        if self._spool is not None and self._spool.unread:
            return 0.0
        return self._core.pending_due(now, self.config.flush_interval, self._flush_target)

    async def _sleep(self, delay: float, *, until_elapsed: bool = False) -> None:
        """Sleep ``delay`` seconds or until woken; ``until_elapsed`` sleeps it all,
        serving spill requests (memory full) meanwhile."""
        wake = self._wake
        assert wake is not None  # noqa: S101 - set by start()
        end = time.monotonic() + delay
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            wake.clear()
            if self._core.spill_requested:
                await self._spill(include_unacked=True)
                continue
            if await _wait(wake, remaining) and not until_elapsed:
                return

    async def _sync_loop(self) -> None:
        wake = self._sync_wake
        assert wake is not None  # noqa: S101 - set by start()
        while True:
            await wake.wait()
            wake.clear()
            # Gather the writes of a short while into one fsync.
            await asyncio.sleep(self.config.spool_sync_interval)
            self._sync_requested = False
            spool = self._spool
            if spool is None:
                continue
            await self._offload(self._sync_spool_quietly)

    async def _spill(self, *, include_unacked: bool) -> None:
        """Move what memory holds to the spool, oldest first; keep in memory what fails."""
        if self._spool is None:
            self._core.spill_requested = False
            return
        events, runs = self._core.take_for_spill(include_unacked=include_unacked)
        if events:
            await self._offload(self._write_to_spool, events, runs)

    def _write_to_spool(self, events: list[bytes], runs: list[tuple[int, int]]) -> int:
        """Append ``events`` in chunks and fsync; what cannot be written goes back to memory."""
        spool = self._spool
        labels = Runs(runs)
        written = 0
        try:
            if spool is None:
                return 0
            while written < len(events):
                size = 0
                end = written
                while end < len(events) and (end == written or size < _SPILL_CHUNK_BYTES):
                    size += len(events[end])
                    end += 1
                chunk_runs = labels.take(end - written)
                try:
                    spool.append(events[written:end], chunk_runs)
                except SpoolError:
                    labels.extendleft(chunk_runs)
                    raise
                written = end
            spool.sync()
            self._spool_failing = False
        except SpoolError as exc:
            self._spool_failed(exc)
        finally:
            self._core.count_spooled(written)
            self._core.put_back(events[written:], labels.items())
        return written

    async def _session(self) -> _Outcome:
        """One IngestEvents stream: resend what is unacked, then send until idle or broken."""
        self._core.count("streams")
        self._stream += 1
        # Requests go through our own generator rather than call.write(): when a
        # call dies, grpc leaves the task feeding a write()-style call pending
        # forever, while a generator we end ourselves lets it finish.
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        call = self._ingest(_drain(outbox), metadata=self._metadata, wait_for_ready=False)
        outcome = _Outcome()
        self._last_ack = time.monotonic()
        reader = asyncio.ensure_future(self._read_acks(call, outcome))
        writer = asyncio.ensure_future(self._write_batches(outbox, self._stream))
        tick = min(1.0, self.config.ack_timeout / 4)
        try:
            waiting: set[asyncio.Future[None]] = {reader, writer}
            while True:
                done, _ = await asyncio.wait(
                    waiting, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                if reader in done:
                    return self._finish(reader, outcome)
                if writer in done:
                    waiting = {reader}
                    if not writer.cancelled() and writer.exception() is not None:
                        log.error("eventwire tracker: sending failed", exc_info=writer.exception())
                        call.cancel()
                if self._ack_overdue():
                    self._core.count("stream_errors")
                    log.warning(
                        "eventwire tracker: no ack for %.1fs; abandoning the stream",
                        self.config.ack_timeout,
                    )
                    outcome.unreachable = True
                    outcome.code = grpc.StatusCode.DEADLINE_EXCEEDED
                    return outcome
        finally:
            for task in (reader, writer):
                task.cancel()
            call.cancel()
            # Bounded: a task that ignored its cancellation must not stall delivery.
            stopped, stuck = await asyncio.wait({reader, writer}, timeout=_STOP_TIMEOUT)
            for finished in stopped:
                if not finished.cancelled():
                    finished.exception()  # retrieved: it was reported above, or is moot
            if stuck:
                log.error("eventwire tracker: a stream task ignored cancellation: %s", stuck)
            _end(outbox)

    def _finish(self, reader: asyncio.Future[None], outcome: _Outcome) -> _Outcome:
        if reader.cancelled():
            # The call was cancelled under the reader (grpc raises CancelledError).
            self._core.count("stream_errors")
            return outcome
        error = reader.exception()
        if error is None:
            # The server ended the stream cleanly; anything unacked goes again.
            outcome.ok = not self._core.has_unacked()
            return outcome
        self._core.count("stream_errors")
        if isinstance(error, CircuitOpenError):
            outcome.unreachable = True
            outcome.code = error.code()
            outcome.delay = max(error.retry_after, 0.01)
            self._error(error)
            return outcome
        if not isinstance(error, grpc.RpcError):
            log.error("eventwire tracker: reading acks failed", exc_info=error)
            return outcome
        mapped = map_rpc_error(error)
        code = mapped.status_code
        outcome.code = code
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            outcome.pushback = True
            self._core.count("pushbacks")
            self._cwnd = max(1, self._cwnd // 2)
            self._acks_in_window = 0
            pushback = parse_pushback(mapped.trailing_metadata())
            if pushback is not None and pushback > 0:
                outcome.delay = pushback / 1000
        self._error(mapped)
        return outcome

    def _ack_overdue(self) -> bool:
        oldest = self._core.oldest_unacked_sent_at()
        if oldest is None:
            return False
        return time.monotonic() - max(oldest, self._last_ack) > self.config.ack_timeout

    async def _read_acks(self, call: Any, outcome: _Outcome) -> None:
        settled = self._settled
        wake = self._wake
        spool = self._spool
        async for ack in call:
            batch, rejections = self._core.acknowledge(ack)
            if batch is None:
                continue
            self._last_ack = time.monotonic()
            outcome.progress = True
            if self._cwnd < self._limits.window:
                self._acks_in_window += 1
                if self._acks_in_window >= self._cwnd:
                    self._cwnd += 1
                    self._acks_in_window = 0
            if batch.source is not None and spool is not None:
                spool.ack(batch.source, len(batch.events))
            for rejection in rejections:
                self._error(EventRejectedError(rejection.event_id, rejection.violations))
            if settled is not None:
                settled.set()
            if wake is not None:
                wake.set()

    async def _write_batches(self, outbox: asyncio.Queue[bytes | None], stream: int) -> None:
        wake = self._wake
        assert wake is not None  # noqa: S101 - set by start()
        core = self._core
        idle_since: float | None = None
        while True:
            wake.clear()
            if core.spill_requested:
                # Memory is full while the stream is up: spill what is queued,
                # not what is in flight (its acks may still come).
                await self._spill(include_unacked=False)
            room = core.in_flight(stream) < self._cwnd
            if room:
                # Batches a broken stream left unacked go first, oldest first.
                batch = core.next_resend(stream) or await self._next_batch()
                if batch is not None:
                    idle_since = None
                    core.mark_sent(batch, time.monotonic(), stream)
                    await outbox.put(batch.encode())
                    continue
            now = time.monotonic()
            wait = self.config.stream_idle_timeout
            if not core.has_unacked():
                idle_since = idle_since or now
                if now - idle_since >= self.config.stream_idle_timeout:
                    await outbox.put(None)  # half-close: the server ends the stream
                    return
                wait = idle_since + self.config.stream_idle_timeout - now
            due = core.pending_due(now, self.config.flush_interval, self._flush_target)
            if due is not None and room:
                wait = min(wait, max(due, 0.001))
            await _wait(wake, wait)

    async def _next_batch(self) -> Batch | None:
        spool = self._spool
        # The spool holds the oldest events: it goes first.
        while spool is not None and spool.unread:
            batch, more = await self._offload(self._read_spool)
            if batch is not None:
                return batch
            if not more:
                break
        due = self._core.pending_due(
            time.monotonic(), self.config.flush_interval, self._flush_target
        )
        if due == 0:
            return self._core.take_memory_batch()
        return None

    def _read_spool(self) -> tuple[Batch | None, bool]:
        """The next batch from the spool, registered as unacked; and whether to read on."""
        spool = self._spool
        if spool is None:
            return None, False
        limits = self._limits
        try:
            read = spool.read(limits.max_batch_events, limits.max_batch_bytes)
        except SpoolError as exc:
            self._spool_failed(exc)
            return None, False
        if read is None:
            return None, False
        if read.lost:
            lost = sum(n for _, n in read.lost)
            self._core.drop_settled(read.lost, lost)
            for _ in range(lost):
                self._drop("", DropReason.SPOOL_DAMAGED)
        if not read.events:
            return None, True
        return self._core.add_spool_batch(read.events, read.runs, read.segment), True

    # -- stopping, exit, fork --------------------------------------------------------

    def _keep_leftovers(self) -> None:
        """After the background task stopped: memory goes to the spool, or is dropped."""
        core = self._core
        spool = self._spool
        if spool is not None:
            events, runs = core.take_for_spill(include_unacked=True)
            self._write_to_spool(events, runs)
            self._final_spool = (spool.events, spool.nbytes)
            spool.close()
        lost, lost_runs = core.take_for_spill(include_unacked=True)
        if lost:
            core.drop_settled(lost_runs, len(lost))
            reason = DropReason.CLOSE_TIMEOUT if spool is None else DropReason.SPOOL_FULL
            for item in lost:
                self._drop(event_id_of(item), reason)

    def _at_exit(self) -> None:
        # The event loop is gone by now (asyncio.run returned): no network, but
        # memory can still reach the spool.
        if self._close_result is not None:
            return
        self._closed = True
        if self._loop is not None and self._loop.is_running():
            return  # someone else's running loop: it is not ours to stop
        self._keep_leftovers()

    def _after_fork_in_child(self) -> None:
        """The child starts with an empty pipeline of its own, never the parent's."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        # gRPC cannot be used in a child once the parent has started it (its
        # core state and threads do not survive fork()): such a child writes
        # to its own spool lane, for the parent or the next run to deliver.
        self._spool_only = self._grpc_started or self._spool_only
        _INHERITED.append(
            (self._channel, self._ingest, self._loop, self._tasks, self._background, self._core)
        )
        self._core = Pipeline(self._limits)
        if self._spool is not None:
            self._spool.forget_after_fork()
        self._spool = self._new_spool()
        self._init_runtime()

    def _sync_spool_quietly(self) -> None:
        if self._spool is not None:
            try:
                self._spool.sync()
            except SpoolError as exc:
                self._spool_failed(exc)

    def _close_spool_only(self) -> None:
        self._sync_spool_quietly()
        if self._spool is not None:
            self._spool.close()
        _LIVE.discard(self)


class SyncTracker:
    """The blocking twin of :class:`Tracker`: the same tracker on a private loop thread.

    ``track()`` is as cheap as the async one; :meth:`flush` and :meth:`close`
    block the calling thread. The loop thread is a daemon, started on first use;
    at interpreter exit the tracker is closed (up to ``atexit_timeout``).
    """

    def __init__(
        self,
        target: str,
        config: TrackerConfig | None = None,
        *,
        breaker: CircuitBreakerPolicy | CircuitBreaker | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel_options: ChannelOptions = (),
        on_drop: DropHook | None = None,
        on_error: ErrorHook | None = None,
    ) -> None:
        self._tracker = Tracker(
            target,
            config,
            breaker=breaker,
            credentials=credentials,
            token=token,
            channel_options=channel_options,
            on_drop=on_drop,
            on_error=on_error,
            _managed=True,
        )
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._close_result: bool | None = None
        _LIVE.add(self)

    @property
    def config(self) -> TrackerConfig:
        return self._tracker.config

    @property
    def stats(self) -> TrackerStats:
        return self._tracker.stats

    @property
    def spool_lane(self) -> Path | None:
        return self._tracker.spool_lane

    def track(
        self,
        event_name: str,
        *,
        user_id: str = "",
        properties: Mapping[str, str] | None = None,
        timestamp: int | float | dt.datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue one event; returns its ``event_id`` at once. See :meth:`Tracker.track`."""
        if self._thread is None and not self._tracker._spool_only:
            self._ensure_started()
        return self._tracker.track(
            event_name,
            user_id=user_id,
            properties=properties,
            timestamp=timestamp,
            event_id=event_id,
        )

    def start(self) -> None:
        """Start the loop thread now (``track()`` does it on first use)."""
        self._ensure_started()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything tracked before is acknowledged; False on timeout."""
        loop = self._ensure_started()
        if loop is None:
            return self._run_here(self._tracker.flush(timeout))
        return self._call(loop, self._tracker.flush(timeout), timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush for up to ``timeout`` seconds, keep the rest in the spool, stop the thread."""
        with self._lock:
            if self._close_result is not None:
                return self._close_result
            loop, thread = self._loop, self._thread
            if loop is None and not self._tracker._spool_only:
                loop, thread = self._spawn()
            if loop is None or thread is None:
                result = self._run_here(self._tracker.close(timeout))
            else:
                try:
                    result = self._call(loop, self._tracker.close(timeout), timeout)
                finally:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(timeout=5.0)
            self._close_result = result
            _LIVE.discard(self)
            return result

    def __enter__(self) -> SyncTracker:
        self._ensure_started()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is not None:
            return self._loop
        with self._lock:
            if self._loop is not None or self._tracker._spool_only:
                return self._loop
            if self._close_result is not None:
                return None
            loop, _ = self._spawn()
            return loop

    def _spawn(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_serve_loop, args=(loop,), name="eventwire-tracker", daemon=True
        )
        thread.start()
        asyncio.run_coroutine_threadsafe(self._tracker.start(), loop).result()
        self._loop, self._thread = loop, thread
        return loop, thread

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float | None) -> bool:
        future: Future[bool] = asyncio.run_coroutine_threadsafe(coro, loop)
        # The coroutine keeps its own deadline; the slack covers the hop between threads.
        return future.result(None if timeout is None else timeout + 30.0)

    @staticmethod
    def _run_here(coro: Any) -> bool:
        # Spool-only (forked child): the coroutine does no network I/O.
        result: bool = asyncio.run(coro)
        return result

    def _after_fork_in_child(self) -> None:
        _INHERITED.append((self._loop, self._thread))
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._tracker._after_fork_in_child()

    def _at_exit(self) -> None:
        if self._close_result is not None:
            return
        self.close(self._tracker.config.atexit_timeout)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds; True if it was set.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that
    arrives as the event is set (fixed in 3.12), leaving a task that was told
    to stop running on; ``asyncio.timeout`` counts cancellations correctly.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def _drain(outbox: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await outbox.get()) is not None:
        yield item


def _end(outbox: asyncio.Queue[bytes | None]) -> None:
    """Let the request generator finish, whatever state the call is in."""
    while not outbox.empty():
        outbox.get_nowait()
    outbox.put_nowait(None)


def _serve_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
