"""Deadlines: one monotonic instant per call, and passing the remaining budget downstream.

grpcio gives a server handler ``context.time_remaining()`` but never applies it
to the calls that handler makes. :func:`deadline_from` does: inside its block,
every call through an eventwire channel ends no later than the incoming RPC::

    async def ReportAlert(self, request, context):
        with deadline_from(context):
            await downstream.track_event(...)   # timeout = min(own, caller's remaining)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Deadline", "current_deadline", "deadline_from", "remaining_budget"]


class _HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on a monotonic clock by which something must be done."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(cls, context: _HasTimeRemaining) -> Deadline | None:
        """The deadline of the RPC a server handler is serving, if the caller set one."""
        remaining = context.time_remaining()
        return None if remaining is None else cls.after(max(0.0, remaining))

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def min(self, other: Deadline | None) -> Deadline:
        return self if other is None or self.at <= other.at else other


_CURRENT: ContextVar[Deadline | None] = ContextVar("eventwire_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline inherited from an enclosing :func:`deadline_from` block, if any."""
    return _CURRENT.get()


@contextmanager
def deadline_from(source: _HasTimeRemaining | Deadline | float | None) -> Iterator[Deadline | None]:
    """Bound every eventwire call made inside the block by ``source``'s deadline.

    ``source`` is a gRPC server context (sync or aio), a :class:`Deadline`, or
    seconds from now. Nested blocks only ever shorten the deadline.
    """
    if source is None:
        deadline = None
    elif isinstance(source, Deadline):
        deadline = source
    elif isinstance(source, int | float):
        deadline = Deadline.after(source)
    else:
        deadline = Deadline.from_context(source)
    outer = _CURRENT.get()
    effective = outer if deadline is None else deadline.min(outer)
    token = _CURRENT.set(effective)
    try:
        yield effective
    finally:
        _CURRENT.reset(token)


def remaining_budget(context: _HasTimeRemaining, default: float | None = None) -> float | None:
    """``min(default, the incoming RPC's time remaining)``: a timeout to pass downstream."""
    remaining = context.time_remaining()
    if remaining is None:
        return default
    remaining = max(0.0, remaining)
    return remaining if default is None else min(default, remaining)
