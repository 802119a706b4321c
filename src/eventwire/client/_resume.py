"""Resumable server streams (WatchAlerts, ExportEvents): the state machine, free of I/O.

A resumable stream is a series of calls to one server-streaming method. Every
message carries a cursor, its position in commit order; the next call asks for
what comes after the last cursor handed to the caller, so a caller that reads
through a reconnect sees every message once, none twice::

    next_request() ─► open the call ─► message ─► delivered(cursor) ─► the caller
          ▲                 │                                              │
          │                 └─ error ─► failed(error) ─┬─ None: raise it   │
          │                  OK end ─► ended() ────────┤  (or stop)        │
          └──────── sleep(delay) ◄─────────────────────┘                   ▼
                                                            .cursor, to persist

Which errors are worth a reconnect, and how long to wait, come from the
client's own :class:`~eventwire.client.RetryPolicy` (its ``retryable_codes``,
:func:`~eventwire.client.backoff`, ``grpc-retry-pushback-ms``) and its breaker
(an open circuit is waited out): the same policy objects as every unary call,
and the same ``on_retry`` hook and retry metric. ``max_attempts`` is not a
limit here: a stream reconnects until it is stopped, its deadline passes, or an
error it cannot get past (OUT_OF_RANGE, INVALID_ARGUMENT, PERMISSION_DENIED,
UNAUTHENTICATED, ...) ends it. The retry throttle does not stop reconnects
either, since giving up would end the stream for good; the backoff (capped at
``max_backoff``) and the breaker pace them. ``retry=None`` turns them off.

The async and the blocking drivers (``client/_streams.py``) make the same
decisions here and only do the waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from eventwire.client._backoff import backoff
from eventwire.client._core import Resilience
from eventwire.client._deadline import Deadline
from eventwire.client._exceptions import (
    CircuitOpenError,
    DeadlineExceededError,
    RpcError,
    parse_pushback,
)
from eventwire.client._policy import RetryEvent

__all__ = ["Resumption"]

log = logging.getLogger("eventwire.client")


class Resumption:
    """Where one resumable stream is, and whether and when to call again.

    ``request(cursor)`` builds the request of a call that resumes after
    ``cursor`` ("" before the first message). ``ends``: an OK end of a call is
    the end of the stream (an export without follow); otherwise the server
    never ends it by itself, and an OK end is one more reason to reconnect.
    ``timeout`` bounds the whole stream, every call and sleep included.
    """

    def __init__(
        self,
        res: Resilience,
        method: str,
        request: Callable[[str], Any],
        *,
        after: str = "",
        ends: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.res = res
        self.method = method
        self._request = request
        self.cursor = after
        """The cursor of the last message handed to the caller (else the ``after`` given)."""
        self.ends = ends
        self.failures = 0
        """Calls in a row that ended without delivering anything."""
        self.reconnects = 0
        """Calls made after the first."""
        self.stopped = False
        self.call: Any = None
        """The call in progress, for :meth:`stop` to cancel from another thread or task."""
        self._previous_delay: float | None = None
        self._deadline = None if timeout is None else Deadline.after(timeout, res.clock)

    def next_request(self) -> tuple[Any, float | None]:
        """The next call's request and its timeout (what is left of the stream's deadline)."""
        if self._deadline is None:
            return self._request(self.cursor), None
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceededError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline exceeded before reconnecting {self.method}",
                attempts=self.reconnects + 1,
            )
        return self._request(self.cursor), remaining

    def opened(self, call: Any) -> None:
        self.call = call

    def delivered(self, cursor: str) -> None:
        """A message reaches the caller: later calls resume after it, backoff starts over."""
        self.cursor = cursor
        self.failures = 0
        self._previous_delay = None

    def ended(self) -> float | None:
        """The call ended OK: None when that is the stream's end, else seconds to wait."""
        self.call = None
        if self.ends or self.stopped:
            return None
        # The server never ends a watch by itself: a proxy or a server between
        # versions did, and the backoff keeps that from turning into a busy loop.
        return self._delay(grpc.StatusCode.UNAVAILABLE, None, 0.0)

    def failed(self, error: RpcError) -> float | None:
        """Seconds to wait before resuming after ``error``, or None: stop, or raise it."""
        self.call = None
        if self.stopped:
            return None
        floor = error.retry_after if isinstance(error, CircuitOpenError) else 0.0
        return self._delay(error.status_code, error.trailing_metadata(), floor)

    def stop(self) -> Any:
        """No more calls; the call in progress, if any, is the caller's to cancel."""
        self.stopped = True
        return self.call

    def _delay(self, code: grpc.StatusCode, trailing: Any, floor: float) -> float | None:
        retry = self.res.retry
        if retry is None or code not in retry.retryable_codes:
            return None
        pushback_ms = parse_pushback(trailing)
        if pushback_ms == -1:
            return None
        self.failures += 1
        if pushback_ms is not None:
            delay = pushback_ms / 1000
            self._previous_delay = None
        else:
            delay = backoff(retry, self.failures, self.res.rng.random(), self._previous_delay)
            self._previous_delay = delay
        # An open circuit fails every call until it half-opens: wait for that.
        delay = max(delay, floor)
        if self._deadline is not None and delay >= self._deadline.remaining():
            return None
        self.reconnects += 1
        if self.res.metrics is not None:
            self.res.metrics.retries.labels(self.method).inc()
        if self.res.on_retry is not None:
            event = RetryEvent(self.method, self.failures, code, delay, pushback_ms is not None)
            try:
                self.res.on_retry(event)
            except Exception:
                log.exception("on_retry hook %r failed", self.res.on_retry)
        return delay
