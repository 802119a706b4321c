"""The blocking twins of :mod:`eventwire.client._aio_interceptors`, for ``grpc.intercept_channel``.

The same :class:`~eventwire.client._core.CallPlan` decides; only the waiting
differs: a finished call's ``exception()`` or a future instead of an await,
``time.sleep`` between attempts, and grpc's own thread calling back when a
streamed response ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import grpc

from eventwire.client._backoff import is_testing
from eventwire.client._core import CallPlan, Resilience, StreamVerdict
from eventwire.client._exceptions import code_of, rpc_errors, trailers_of

__all__ = [
    "SyncStreamStreamInterceptor",
    "SyncStreamUnaryInterceptor",
    "SyncUnaryStreamInterceptor",
    "SyncUnaryUnaryInterceptor",
    "sync_interceptors",
]

Req = TypeVar("Req")


class _SyncDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _SyncCallDetails(_SyncDetails, grpc.ClientCallDetails):
    pass


class _SyncBase:
    def __init__(self, resilience: Resilience) -> None:
        self.resilience = resilience

    @staticmethod
    def _details(
        details: grpc.ClientCallDetails, timeout: float | None, plan: CallPlan
    ) -> _SyncCallDetails:
        return _SyncCallDetails(
            details.method,
            timeout,
            plan.metadata(details.metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _with_retries(
        self,
        plan: CallPlan,
        start: Callable[[float | None], Any],
        *,
        replayable: bool = True,
    ) -> Any:
        """Attempts until one succeeds or the plan gives up.

        ``start(timeout)`` returns a grpc outcome: a finished call from an
        interceptor continuation, or a future whose ``exception()`` waits.
        """
        with rpc_errors(plan):
            while True:
                permit, timeout = plan.start_attempt()
                outcome = None
                try:
                    outcome = start(timeout)
                    exc = outcome.exception()
                except BaseException:
                    # KeyboardInterrupt and friends: nothing is known about the backend.
                    plan.cancelled(permit)
                    if outcome is not None:
                        outcome.cancel()
                    raise
                if exc is None:
                    plan.succeeded(permit)
                    return outcome
                if not isinstance(exc, grpc.RpcError):
                    plan.cancelled(permit)
                    raise exc
                delay = plan.failed(permit, code_of(exc), trailers_of(exc))
                if delay is None or not replayable:
                    plan.end(code_of(exc))
                    raise exc
                if delay > 0 and not is_testing():
                    time.sleep(delay)

    @staticmethod
    def _open(plan: CallPlan, start: Callable[[float | None], Any]) -> Any:
        """One attempt at a call with a streamed response, watched to its end, never retried.

        The blocking twin of :meth:`_AioBase._open`: grpc calls the callback
        from its own thread once the call is over, with the same CallPlan verdict.
        """
        call, _ = _SyncBase._open_stream(plan, start)
        return call

    @staticmethod
    def _open_stream(
        plan: CallPlan, start: Callable[[float | None], Any], *, settle_after: float | None = None
    ) -> tuple[Any, StreamVerdict]:
        with rpc_errors(plan):
            permit, timeout = plan.start_attempt()
            try:
                call = start(timeout)
            except BaseException:
                plan.cancelled(permit)
                raise
        verdict = StreamVerdict(plan, permit)
        if settle_after is not None and permit is not None:
            timer = threading.Timer(settle_after, verdict.answered)
            timer.daemon = True
            verdict.on_settle = timer.cancel
            timer.start()

        def done(finished: Any) -> None:
            code = code_of(finished)
            trailing = None if code == grpc.StatusCode.OK else trailers_of(finished)
            verdict.finished(code, trailing)

        call.add_done_callback(done)
        return call, verdict


class SyncUnaryUnaryInterceptor(_SyncBase, grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> Any:
        details = client_call_details
        plan = self.resilience.plan(details.method, details.timeout)
        return self._with_retries(
            plan, lambda t: continuation(self._details(details, t, plan), request)
        )


class SyncStreamUnaryInterceptor(_SyncBase, grpc.StreamUnaryClientInterceptor):
    def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[Req]], Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[Req],
    ) -> Any:
        details = client_call_details
        plan = self.resilience.plan(details.method, details.timeout)
        if isinstance(request_iterator, list | tuple):
            requests = request_iterator
            return self._with_retries(
                plan, lambda t: continuation(self._details(details, t, plan), iter(requests))
            )
        return self._with_retries(
            plan,
            lambda t: continuation(self._details(details, t, plan), request_iterator),
            replayable=False,
        )


class SyncUnaryStreamInterceptor(_SyncBase, grpc.UnaryStreamClientInterceptor):
    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> Any:
        details = client_call_details
        plan = self.resilience.plan(details.method, details.timeout, retries=False)
        return self._open(plan, lambda t: continuation(self._details(details, t, plan), request))


class SyncStreamStreamInterceptor(_SyncBase, grpc.StreamStreamClientInterceptor):
    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[Req]], Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[Req],
    ) -> Any:
        details = client_call_details
        plan = self.resilience.plan(details.method, details.timeout, retries=False)
        return self._open(
            plan, lambda t: continuation(self._details(details, t, plan), request_iterator)
        )


def sync_interceptors(resilience: Resilience) -> list[Any]:
    """One interceptor per call shape, all over the same policies and state."""
    return [
        SyncUnaryUnaryInterceptor(resilience),
        SyncStreamUnaryInterceptor(resilience),
        SyncUnaryStreamInterceptor(resilience),
        SyncStreamStreamInterceptor(resilience),
    ]
