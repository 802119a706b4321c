"""The circuit breaker state machine: closed → open → half-open, free of I/O.

The async and sync clients drive the same object, and so do the destinations'
relays: they ask :meth:`acquire` before an attempt and report its outcome with
:meth:`record` (a status code) or :meth:`record_outcome` (failed or not), or
:meth:`release` when it was cancelled. An open breaker raises
:meth:`CircuitBreaker.open_error` (:class:`BreakerOpen` here; the client's
subclass raises its ``CircuitOpenError``). Time comes from an injectable clock,
so tests step through every transition without sleeping.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import grpc

from eventwire.resilience.policy import CircuitBreakerPolicy

__all__ = ["BreakerOpen", "BreakerState", "CircuitBreaker", "Permit", "Transition"]

log = logging.getLogger("eventwire.client")


class BreakerOpen(Exception):
    """The breaker is open: the attempt was not made."""

    def __init__(self, target: str, half_open_at: float, now: float) -> None:
        self.target = target
        self.half_open_at = half_open_at
        self.retry_after = max(0.0, half_open_at - now)
        """Seconds until the breaker lets a trial attempt through."""
        super().__init__(f"circuit open for {target}; half-opens in {self.retry_after:.3f}s")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, as passed to transition hooks."""

    name: str
    before: BreakerState
    after: BreakerState
    at: float
    """Clock time of the change (``time.monotonic()`` unless a clock was injected)."""
    failure_rate: float | None = None
    """Failure share that caused an opening, if that is why."""


class Permit(NamedTuple):
    """Leave to make one attempt; hand it back through record() or release()."""

    # A NamedTuple rather than a frozen dataclass: one is built per attempt,
    # and this is the cheaper of the two immutable records.
    generation: int
    half_open: bool
    started: float


TransitionHook = Callable[[Transition], None]


class CircuitBreaker:
    """A sliding-window circuit breaker, safe to share between threads and tasks."""

    def __init__(
        self,
        policy: CircuitBreakerPolicy | None = None,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionHook | None = None,
    ) -> None:
        self.policy = policy or CircuitBreakerPolicy()
        self.name = name
        self._clock = clock
        self._hooks: list[TransitionHook] = [] if on_transition is None else [on_transition]
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._opened_at = 0.0
        # Closed: (time, failed, slow) per finished call, oldest first.
        self._window: deque[tuple[float, bool, bool]] = deque()
        # Running totals over the window, so a verdict costs O(1), not O(window).
        self._failed = 0
        self._slow = 0
        self._trials_issued = 0
        self._trials: list[tuple[bool, bool]] = []

    def add_hook(self, hook: TransitionHook) -> None:
        """Call ``hook`` on every transition (outside the breaker's lock)."""
        self._hooks.append(hook)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            fired = self._maybe_half_open(self._clock())
            state = self._state
        self._fire(fired)
        return state

    @property
    def half_open_at(self) -> float | None:
        """Clock time at which an open breaker lets trial calls through, else None."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return None
            return self._opened_at + self.policy.open_duration

    def acquire(self) -> Permit:
        """Leave for one attempt, or :class:`CircuitOpenError` without touching the network."""
        now = self._clock()
        with self._lock:
            fired = self._maybe_half_open(now)
            state = self._state
            if state is BreakerState.OPEN:
                error = self.open_error(self._opened_at + self.policy.open_duration, now)
            elif state is BreakerState.HALF_OPEN:
                if self._trials_issued >= self.policy.half_open_calls:
                    # Trials are out; their verdict decides. Until then, fail fast.
                    error = self.open_error(now, now)
                else:
                    self._trials_issued += 1
                    error = None
            else:
                error = None
            permit = Permit(self._generation, state is BreakerState.HALF_OPEN, now)
        self._fire(fired)
        if error is not None:
            raise error
        return permit

    def open_error(self, half_open_at: float, now: float) -> Exception:
        """What :meth:`acquire` raises while the breaker is open."""
        return BreakerOpen(self.name, half_open_at, now)

    def record(self, permit: Permit, code: grpc.StatusCode | None) -> None:
        """The outcome of a permitted attempt: ``None`` or ``OK`` for success."""
        self.record_outcome(permit, failed=code is not None and code in self.policy.failure_codes)

    def record_outcome(self, permit: Permit, *, failed: bool) -> None:
        """The outcome of a permitted attempt, judged by the caller."""
        now = self._clock()
        slow_after = self.policy.slow_call_duration
        slow = slow_after is not None and now - permit.started > slow_after
        fired: list[Transition] = []
        with self._lock:
            if permit.generation != self._generation:
                # Started under an earlier state: its verdict is stale.
                return
            if self._state is BreakerState.HALF_OPEN:
                self._trials.append((failed, slow))
                if len(self._trials) >= self.policy.half_open_calls:
                    fired = self._judge(
                        len(self._trials),
                        sum(f for f, _ in self._trials),
                        sum(s for _, s in self._trials),
                        now,
                        from_half_open=True,
                    )
            elif self._state is BreakerState.CLOSED:
                self._window.append((now, failed, slow))
                self._failed += failed
                self._slow += slow
                self._trim(now)
                calls = len(self._window)
                if calls >= self.policy.minimum_calls:
                    fired = self._judge(calls, self._failed, self._slow, now)
        self._fire(fired)

    def release(self, permit: Permit) -> None:
        """Give back a permit whose attempt ended with no verdict (cancelled by the caller)."""
        with self._lock:
            if permit.half_open and permit.generation == self._generation:
                self._trials_issued -= 1

    def reset(self) -> None:
        """Force the breaker closed with an empty window."""
        with self._lock:
            fired = self._to(BreakerState.CLOSED, self._clock())
        self._fire(fired)

    # Everything below runs under self._lock and returns transitions to fire after it.

    def _trim(self, now: float) -> None:
        size = self.policy.window_size
        window = self._window
        if self.policy.window == "count":
            while len(window) > size:
                _, failed, slow = window.popleft()
                self._failed -= failed
                self._slow -= slow
        else:
            while window and window[0][0] <= now - size:
                _, failed, slow = window.popleft()
                self._failed -= failed
                self._slow -= slow

    def _judge(
        self, total: int, failed: int, slow: int, now: float, *, from_half_open: bool = False
    ) -> list[Transition]:
        failure_rate = failed / total
        slow_rate = slow / total
        if (
            failure_rate >= self.policy.failure_rate_threshold
            or slow_rate >= self.policy.slow_call_rate_threshold
        ):
            return self._to(BreakerState.OPEN, now, failure_rate)
        if from_half_open:
            return self._to(BreakerState.CLOSED, now)
        return []

    def _maybe_half_open(self, now: float) -> list[Transition]:
        if self._state is BreakerState.OPEN and now >= self._opened_at + self.policy.open_duration:
            return self._to(BreakerState.HALF_OPEN, now)
        return []

    def _to(
        self, state: BreakerState, now: float, failure_rate: float | None = None
    ) -> list[Transition]:
        before = self._state
        self._state = state
        self._generation += 1
        self._window.clear()
        self._failed = self._slow = 0
        self._trials_issued = 0
        self._trials = []
        if state is BreakerState.OPEN:
            self._opened_at = now
        if before is state:
            return []
        return [Transition(self.name, before, state, now, failure_rate)]

    def _fire(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            for hook in self._hooks:
                try:
                    hook(transition)
                except Exception:
                    # A broken hook must not break the calls it observes.
                    log.exception("circuit breaker hook %r failed", hook)
