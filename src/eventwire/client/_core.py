"""What one call does next, decided without I/O: the logic the async and sync paths share.

:class:`Resilience` holds one channel's policies and shared state (breaker,
throttle bucket), built from a :class:`~eventwire.client.ClientConfig`;
:class:`CallPlan` walks one call through its attempts (a hedged one with
:class:`~eventwire.client._hedging.HedgeState`). The interceptors in
:mod:`eventwire.client._aio_interceptors` only do the waiting and the network; every
"retry or not, how long, with what timeout" is here.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from eventwire.client._backoff import backoff
from eventwire.client._breaker import CircuitBreaker, Permit
from eventwire.client._config import ClientConfig, Metadata
from eventwire.client._deadline import Deadline, current_deadline
from eventwire.client._exceptions import (
    DeadlineExceededError,
    code_of,
    parse_pushback,
)
from eventwire.client._policy import CircuitBreakerPolicy, RetryEvent, ThrottlePolicy
from eventwire.client._throttle import RetryThrottle
from eventwire.observability.propagation import TRACER_NAME, inject

__all__ = ["SETTLED_AFTER", "CallPlan", "Idempotent", "Resilience", "StreamVerdict"]

log = logging.getLogger("eventwire.client")

Idempotent = Callable[[str], bool]

SETTLED_AFTER = 1.0
"""Seconds after which a resumable stream still open counts as served, for the breaker."""


def _idempotent(spec: Idempotent | Collection[str] | bool) -> Idempotent:
    if isinstance(spec, bool):
        return lambda _method: spec
    if callable(spec):
        return spec
    names = frozenset(spec)
    return names.__contains__


class Resilience:
    """One channel's policies and the state its calls share. Safe across threads and tasks."""

    def __init__(
        self,
        target: str,
        config: ClientConfig,
        *,
        default_timeout: float | None = None,
        idempotent: Idempotent | Collection[str] | bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.config = config
        self.timeout = default_timeout if config.timeout is None else config.timeout
        self.retry = config.retry
        self.hedging = config.hedging
        breaker = config.breaker
        if isinstance(breaker, CircuitBreakerPolicy):
            breaker = CircuitBreaker(breaker, name=target, clock=clock)
        self.breaker: CircuitBreaker | None = breaker
        throttle = config.throttle
        if isinstance(throttle, ThrottlePolicy):
            throttle = RetryThrottle(throttle)
        self.throttle: RetryThrottle | None = throttle
        self.is_idempotent = _idempotent(idempotent)
        self.on_retry = config.on_retry
        self.metadata: Metadata | None = config.metadata
        self.clock = clock
        # Jitter, not cryptography.
        self.rng = config.rng or random.Random()  # noqa: S311
        # None when tracing is off: then no span work happens at all.
        provider = config.tracer_provider
        self.tracer: Tracer | None = None if provider is None else provider.get_tracer(TRACER_NAME)
        self.metrics = config.metrics
        if self.metrics is not None and self.breaker is not None:
            self.metrics.watch_breaker(self.breaker)

    def plan(
        self,
        method: str | bytes,
        timeout: float | None,
        *,
        retries: bool = True,
        default_timeout: bool = True,
    ) -> CallPlan:
        """A plan for one call. ``retries=False`` for calls that are never retried or hedged
        (streamed responses); ``default_timeout=False`` also for long-lived streams."""
        name = method.decode() if isinstance(method, bytes) else method
        return CallPlan(self, name, timeout, retries=retries, default_timeout=default_timeout)


class CallPlan:
    """One call's progress through its attempts."""

    def __init__(
        self,
        res: Resilience,
        method: str,
        timeout: float | None,
        *,
        retries: bool = True,
        default_timeout: bool = True,
    ) -> None:
        self.res = res
        self.method = method
        self.attempts = 0
        self._previous_delay: float | None = None
        idempotent = retries and res.is_idempotent(method)
        self.retry = res.retry if idempotent else None
        self.hedging = res.hedging if idempotent else None
        # A call that is not retried still tells the throttle how the backend is doing.
        self._failing_codes = res.retry.retryable_codes if res.retry is not None else frozenset()
        # One deadline for all attempts: the caller's timeout (else the channel's
        # default), the retry policy's total budget, and any deadline inherited
        # from an RPC being served (deadline_from), whichever ends first.
        now = res.clock()
        deadline: Deadline | None = None
        own = timeout if timeout is not None or not default_timeout else res.timeout
        if own is not None:
            deadline = Deadline(now + own, res.clock)
        if self.retry is not None and self.retry.total_timeout is not None:
            deadline = Deadline(now + self.retry.total_timeout, res.clock).min(deadline)
        inherited = current_deadline()
        if inherited is not None:
            deadline = Deadline(now + inherited.remaining(), res.clock).min(deadline)
        self.deadline = deadline
        # Tracing (only with a tracer): one span for the call, a CLIENT span per
        # attempt whose context goes out as traceparent, retries as span events.
        self._span: Span | None = None
        self._attempt_spans: list[tuple[Permit | None, Span]] = []
        self._last_attempt: Span | None = None
        if res.tracer is not None:
            name = method.lstrip("/")
            service, _, rpc_method = name.rpartition("/")
            self._attributes = {
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": rpc_method,
            }
            self._span = res.tracer.start_span(
                name, kind=SpanKind.INTERNAL, attributes=self._attributes
            )

    def start_attempt(self) -> tuple[Permit | None, float | None]:
        """Leave and a timeout for the next attempt, or the error that ends the call."""
        try:
            permit, timeout = self._admit()
        except grpc.RpcError as exc:
            if self._span is not None:
                self._span.add_event("attempt refused", {"reason": type(exc).__name__})
                if self.hedging is None:
                    self.end(code_of(exc))
            raise
        if self._span is not None:
            assert self.res.tracer is not None  # noqa: S101 - a span means a tracer
            attempt = self.res.tracer.start_span(
                self.method.lstrip("/"),
                context=trace.set_span_in_context(self._span),
                kind=SpanKind.CLIENT,
                attributes={**self._attributes, "eventwire.attempt": self.attempts},
            )
            self._attempt_spans.append((permit, attempt))
            self._last_attempt = attempt
        return permit, timeout

    def metadata(self, base: Any = None) -> Any:
        """``base`` call metadata plus the channel's token and the current attempt's W3C
        trace context, if traced."""
        token = self.res.metadata
        if token is not None:
            base = (*(base or ()), *token)
        if self._last_attempt is None:
            return base
        return (*(base or ()), *inject(trace.set_span_in_context(self._last_attempt)))

    def end(self, code: grpc.StatusCode) -> None:
        """The call is over with ``code``; ends its span (idempotent)."""
        span, self._span = self._span, None
        if span is None:
            return
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_attribute("eventwire.attempts", self.attempts)
        if self.res.breaker is not None:
            span.set_attribute("eventwire.breaker.state", self.res.breaker.state.value)
        if code != grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()

    def _end_attempt(self, permit: Permit | None, code: grpc.StatusCode) -> None:
        if self.res.metrics is not None:
            self.res.metrics.attempts.labels(self.method, code.name).inc()
        if not self._attempt_spans:
            return
        # Hedged attempts overlap: find this one by its permit, else the oldest.
        index = next(
            (i for i, (p, _) in enumerate(self._attempt_spans) if p is permit and p is not None),
            0,
        )
        _, span = self._attempt_spans.pop(index)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()

    def _admit(self) -> tuple[Permit | None, float | None]:
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline.remaining()
            if timeout <= 0:
                raise DeadlineExceededError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline exceeded before attempt {self.attempts + 1} of {self.method}",
                    attempts=self.attempts,
                )
        permit = self.res.breaker.acquire() if self.res.breaker is not None else None
        self.attempts += 1
        return permit, timeout

    def succeeded(self, permit: Permit | None) -> None:
        if permit is not None and self.res.breaker is not None:
            self.res.breaker.record(permit, None)
        if self.res.throttle is not None:
            self.res.throttle.on_success()
        self._end_attempt(permit, grpc.StatusCode.OK)
        self.end(grpc.StatusCode.OK)

    def cancelled(self, permit: Permit | None) -> None:
        if permit is not None and self.res.breaker is not None:
            self.res.breaker.release(permit)
        self._end_attempt(permit, grpc.StatusCode.CANCELLED)
        if self.hedging is None:
            self.end(grpc.StatusCode.CANCELLED)

    def finished(self, permit: Permit | None, code: grpc.StatusCode, trailing: Any) -> None:
        """A call that is never retried (a streamed response) ended with ``code``."""
        if code == grpc.StatusCode.OK:
            self.succeeded(permit)
        elif code == grpc.StatusCode.CANCELLED:
            self.cancelled(permit)
        else:
            self.failed(permit, code, trailing)

    def failed(self, permit: Permit | None, code: grpc.StatusCode, trailing: Any) -> float | None:
        """Record a failed attempt; seconds to wait before retrying, or None to give up."""
        delay = self._retry_delay(permit, code, trailing)
        self._end_attempt(permit, code)
        if delay is not None:
            if self.res.metrics is not None:
                self.res.metrics.retries.labels(self.method).inc()
            if self._span is not None:
                self._span.add_event(
                    "retry",
                    {"delay_s": delay, "after_code": code.name, "attempt": self.attempts + 1},
                )
        elif self.hedging is None:
            self.end(code)
        return delay

    def _retry_delay(
        self, permit: Permit | None, code: grpc.StatusCode, trailing: Any
    ) -> float | None:
        res = self.res
        if permit is not None and res.breaker is not None:
            res.breaker.record(permit, code)
        retry = self.retry
        if res.throttle is not None and (
            code in self._failing_codes
            or (self.hedging is not None and code in self.hedging.non_fatal_codes)
        ):
            res.throttle.on_failure()
        if (
            retry is None
            or code not in retry.retryable_codes
            or self.attempts >= retry.max_attempts
        ):
            return None
        pushback_ms = parse_pushback(trailing)
        if pushback_ms == -1:
            return None
        if res.throttle is not None and not res.throttle.allows_retry():
            return None
        if pushback_ms is not None:
            delay = pushback_ms / 1000
            # A6: after a server pushback, backoff starts over from the initial value.
            self._previous_delay = None
        else:
            delay = backoff(retry, self.attempts, res.rng.random(), self._previous_delay)
            self._previous_delay = delay
        if self.deadline is not None and delay >= self.deadline.remaining():
            # The sleep would not end before the deadline: give up now, not later.
            return None
        if res.on_retry is not None:
            event = RetryEvent(self.method, self.attempts, code, delay, pushback_ms is not None)
            try:
                res.on_retry(event)
            except Exception:
                # An instrumentation bug must not change what the call does.
                log.exception("on_retry hook %r failed", res.on_retry)
        return delay


class StreamVerdict:
    """What a call with a streamed response tells the breaker, once, and when.

    By default the verdict is the call's end. A resumable stream (a watch)
    lives for hours, though, and holding its breaker permit that long would
    keep one of a half-open breaker's few trial slots taken all that time, so
    that every other call of the client failed fast. For those the verdict
    comes as soon as the server is serving the call (:meth:`answered`: its
    first message, or :data:`SETTLED_AFTER` seconds without failing, whichever
    comes first); how the call ends later still reaches metrics, spans and the
    throttle, not the breaker. A failed or refused call ends well before either.
    """

    def __init__(self, plan: CallPlan, permit: Permit | None) -> None:
        self.plan = plan
        self._permit = permit
        self._lock = threading.Lock()  # the sync path settles from grpc's threads
        self.on_settle: Callable[[], object] | None = None
        """Called once the call is over, to cancel a timer that would call answered()."""

    def _take(self) -> Permit | None:
        with self._lock:
            permit, self._permit = self._permit, None
        return permit

    def answered(self) -> None:
        """The server is serving the call: a success for the breaker (once)."""
        permit = self._take()
        if permit is not None and self.plan.res.breaker is not None:
            self.plan.res.breaker.record(permit, None)

    def finished(self, code: grpc.StatusCode, trailing: Any) -> None:
        self._settled()
        self.plan.finished(self._take(), code, trailing)

    def cancelled(self) -> None:
        self._settled()
        self.plan.cancelled(self._take())

    def _settled(self) -> None:
        if self.on_settle is not None:
            self.on_settle()
