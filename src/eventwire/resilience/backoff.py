"""Backoff maths as a pure function, and the switch that turns backoff sleeps off in tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from eventwire.resilience.policy import RetryPolicy

__all__ = ["backoff", "backoff_ceiling", "is_testing", "no_backoff", "set_testing"]


def backoff_ceiling(policy: RetryPolicy, retry: int) -> float:
    """Seconds: the largest sleep before the ``retry``-th retry (1-based), before jitter."""
    if retry < 1:
        raise ValueError("retry counts from 1")
    # Compare exponents instead of computing a huge power that could overflow.
    ceiling = policy.initial_backoff * policy.multiplier ** min(retry - 1, 1024)
    return min(policy.max_backoff, ceiling)


def backoff(policy: RetryPolicy, retry: int, rand: float, previous: float | None = None) -> float:
    """Seconds to sleep before the ``retry``-th retry (1-based). Pure: same input, same output.

    ``rand`` is a uniform draw from [0, 1); ``previous`` is the previous sleep,
    used only by decorrelated jitter (None on the first retry).

    * ``none``: ``c = min(max_backoff, initial_backoff * multiplier ** (retry - 1))``
    * ``full``: ``rand * c``
    * ``equal``: ``c / 2 + rand * c / 2``
    * ``decorrelated`` (AWS): ``min(max_backoff, initial + rand * (3 * prev - initial))``
      with ``prev = previous or initial_backoff``
    """
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
    if policy.jitter == "decorrelated":
        prev = policy.initial_backoff if previous is None else max(previous, 0.0)
        high = max(policy.initial_backoff, 3.0 * prev)
        low = policy.initial_backoff
        return min(policy.max_backoff, low + rand * (high - low))
    ceiling = backoff_ceiling(policy, retry)
    if policy.jitter == "full":
        return rand * ceiling
    if policy.jitter == "equal":
        return ceiling / 2 + rand * ceiling / 2
    return ceiling


class _TestingSwitch:
    # Process-wide on purpose, like stamina.set_testing: a test suite flips it
    # once for every client it creates, including ones built deep inside the
    # code under test. A lock keeps nested no_backoff() blocks consistent
    # across threads.
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.on = False


_SWITCH = _TestingSwitch()


def set_testing(on: bool) -> None:
    """Skip every backoff and pushback sleep (delays are still computed and reported).

    Meant for test suites; retries, deadlines and breakers behave as usual.
    """
    with _SWITCH._lock:
        _SWITCH.on = on


def is_testing() -> bool:
    return _SWITCH.on


@contextmanager
def no_backoff() -> Iterator[None]:
    """``set_testing(True)`` for the duration of a ``with`` block, then restore."""
    with _SWITCH._lock:
        before, _SWITCH.on = _SWITCH.on, True
    try:
        yield
    finally:
        with _SWITCH._lock:
            _SWITCH.on = before
