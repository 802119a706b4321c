"""The client's circuit breaker: the state machine of :mod:`eventwire.resilience.breaker`
(shared with the destinations' relays), raising the client's
:class:`~eventwire.client.CircuitOpenError` while open."""

from __future__ import annotations

from eventwire.client._exceptions import CircuitOpenError
from eventwire.resilience import breaker
from eventwire.resilience.breaker import BreakerState, Permit, Transition, TransitionHook

__all__ = ["BreakerState", "CircuitBreaker", "Permit", "Transition", "TransitionHook"]


class CircuitBreaker(breaker.CircuitBreaker):
    """A sliding-window circuit breaker, safe to share between threads and tasks."""

    def open_error(self, half_open_at: float, now: float) -> Exception:
        return CircuitOpenError(self.name, half_open_at, now=now)
