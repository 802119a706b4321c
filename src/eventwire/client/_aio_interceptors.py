"""Policies applied as gRPC client interceptors: one class per call shape over a shared base.

They work on any stub, eventwire's or a user's. Rules they keep:

* call details are never mutated; each attempt gets a new ``ClientCallDetails``
  whose timeout is what remains of the call's single deadline;
* ``asyncio.CancelledError`` always propagates; the attempt in flight is
  cancelled with it and its breaker permit handed back;
* calls with response streams are watched through ``add_done_callback``, not
  awaited, so the caller keeps reading messages as they come;
* every decision (retry or not, how long to sleep) is made by the I/O-free
  :class:`~eventwire.client._core.CallPlan`, shared with the sync interceptors
  (:mod:`eventwire.client._sync_interceptors`), hedging
  (:mod:`eventwire.client._hedging`) and the direct drivers the clients use
  (:mod:`eventwire.client._drivers`).

Unary responses (unary-unary, stream-unary) get deadlines, retries, the
breaker, throttling and, for async unary-unary, hedging. A stream-unary call is
only retried when its requests are a sequence (list/tuple) that can be sent
again. Streamed responses (unary-stream, stream-stream) get deadlines and the
breaker, async and sync alike; they are not retried, as a caller may already
have consumed part of the stream (the clients' WatchAlerts and ExportEvents
are resumed after their last cursor instead, one level up, by
:mod:`eventwire.client._resume`). Every error leaves through
:func:`~eventwire.client._exceptions.rpc_errors`, as the client's exception tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from grpc.aio import ClientCallDetails

from eventwire.client._backoff import is_testing
from eventwire.client._breaker import Permit
from eventwire.client._core import CallPlan, Resilience, StreamVerdict
from eventwire.client._exceptions import code_of, rpc_errors, trailers_of
from eventwire.client._hedging import aio_hedge

__all__ = [
    "AioStreamStreamInterceptor",
    "AioStreamUnaryInterceptor",
    "AioUnaryStreamInterceptor",
    "AioUnaryUnaryInterceptor",
    "aio_interceptors",
]

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class _AioBase:
    """What every async call shape shares: the plan, new call details, the retry loop."""

    def __init__(self, resilience: Resilience) -> None:
        self.resilience = resilience
        self._watchers: set[asyncio.Task[None]] = set()

    @staticmethod
    def _details(
        details: grpc.aio.ClientCallDetails, timeout: float | None, plan: CallPlan
    ) -> ClientCallDetails:
        return ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=plan.metadata(details.metadata),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    def _plan(self, details: grpc.aio.ClientCallDetails, *, retries: bool = True) -> CallPlan:
        return self.resilience.plan(details.method, details.timeout, retries=retries)

    @staticmethod
    async def _sleep(delay: float) -> None:
        if delay > 0 and not is_testing():
            await asyncio.sleep(delay)

    async def _with_retries(
        self,
        plan: CallPlan,
        start: Callable[[float | None], Any],
        *,
        replayable: bool = True,
        awaits: bool = True,
    ) -> Any:
        """Attempts until one succeeds or the plan gives up.

        ``start(timeout)`` begins an attempt: it returns the call, or with
        ``awaits`` an awaitable of it (an interceptor's continuation).
        """
        with rpc_errors(plan):
            while True:
                permit, timeout = plan.start_attempt()
                call: Any = None
                try:
                    call = start(timeout)
                    if awaits:
                        call = await call
                    await call
                except asyncio.CancelledError:
                    plan.cancelled(permit)
                    if call is not None:
                        call.cancel()
                    raise
                except grpc.RpcError as exc:
                    delay = plan.failed(permit, code_of(exc), trailers_of(exc))
                    if delay is None or not replayable:
                        plan.end(code_of(exc))
                        raise
                    await self._sleep(delay)
                    continue
                except BaseException:
                    plan.cancelled(permit)
                    raise
                plan.succeeded(permit)
                # The finished call itself, not just its response, so the caller can
                # still read its metadata and status.
                return call

    async def _open(self, plan: CallPlan, start: Callable[[float | None], Any]) -> Any:
        """One attempt at a call with a streamed response, watched to its end, never retried."""
        with rpc_errors(plan):
            permit, timeout = plan.start_attempt()
            try:
                call = await start(timeout)
            except BaseException:
                plan.cancelled(permit)
                raise
        self._watch(plan, permit, call)
        return call

    def _start_stream(
        self,
        method: str,
        timeout: float | None,
        start: Callable[[float | None, Any], Any],
        *,
        settle_after: float | None = None,
    ) -> tuple[Any, StreamVerdict]:
        """Start a long-lived call with a streamed response directly (no interceptor
        chain): the breaker, and a deadline only if ``timeout`` is given.

        ``start(timeout, metadata)`` makes the call. Raises
        :class:`~eventwire.client.CircuitOpenError` at once while the circuit is
        open; the stream's own errors come from reading it (inside
        :func:`~eventwire.client._exceptions.rpc_errors`). ``settle_after``: see
        :class:`~eventwire.client._core.StreamVerdict`.
        """
        plan = self.resilience.plan(method, timeout, retries=False, default_timeout=False)
        with rpc_errors(plan):
            permit, attempt_timeout = plan.start_attempt()
        try:
            call = start(attempt_timeout, plan.metadata())
        except BaseException:
            plan.cancelled(permit)
            raise
        return call, self._watch(plan, permit, call, settle_after=settle_after)

    def _watch(
        self,
        plan: CallPlan,
        permit: Permit | None,
        call: Any,
        *,
        settle_after: float | None = None,
    ) -> StreamVerdict:
        """Record a streaming call's outcome once it is done, without awaiting it."""
        verdict = StreamVerdict(plan, permit)
        if settle_after is not None and permit is not None:
            timer = asyncio.get_running_loop().call_later(settle_after, verdict.answered)
            verdict.on_settle = timer.cancel

        def done(finished: Any) -> None:
            if finished.cancelled():
                verdict.cancelled()
                return
            # aio calls report their status through coroutines; the status is
            # final by now, so this task finishes on its first step.
            task = asyncio.get_running_loop().create_task(self._settle(verdict, finished))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)

        call.add_done_callback(done)
        return verdict

    @staticmethod
    async def _settle(verdict: StreamVerdict, call: Any) -> None:
        code = await call.code()
        trailing = None if code == grpc.StatusCode.OK else await call.trailing_metadata()
        verdict.finished(code, trailing)


class AioUnaryUnaryInterceptor(_AioBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryUnaryCall[Req, Resp]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> Resp | grpc.aio.UnaryUnaryCall[Req, Resp]:
        plan = self._plan(client_call_details)
        if plan.hedging is not None:
            return await aio_hedge(  # type: ignore[no-any-return]
                plan,
                lambda t: self._details(client_call_details, t, plan),
                continuation,
                request,
            )
        return await self._with_retries(  # type: ignore[no-any-return]
            plan, lambda t: continuation(self._details(client_call_details, t, plan), request)
        )


class AioStreamUnaryInterceptor(_AioBase, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, AsyncIterable[Req] | Iterable[Req]],
            Awaitable[grpc.aio.StreamUnaryCall[Req, Resp]],
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Req] | Iterable[Req],
    ) -> Resp | grpc.aio.StreamUnaryCall[Req, Resp]:
        plan = self._plan(client_call_details)
        replayable = isinstance(request_iterator, list | tuple)
        return await self._with_retries(  # type: ignore[no-any-return]
            plan,
            lambda t: continuation(self._details(client_call_details, t, plan), request_iterator),
            replayable=replayable,
        )


class AioUnaryStreamInterceptor(_AioBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryStreamCall[Req, Resp]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> AsyncIterator[Resp] | grpc.aio.UnaryStreamCall[Req, Resp]:
        plan = self._plan(client_call_details, retries=False)
        return await self._open(  # type: ignore[no-any-return]
            plan, lambda t: continuation(self._details(client_call_details, t, plan), request)
        )


class AioStreamStreamInterceptor(_AioBase, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, AsyncIterable[Req] | Iterable[Req]],
            Awaitable[grpc.aio.StreamStreamCall[Req, Resp]],
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Req] | Iterable[Req],
    ) -> AsyncIterator[Resp] | grpc.aio.StreamStreamCall[Req, Resp]:
        plan = self._plan(client_call_details, retries=False)
        return await self._open(  # type: ignore[no-any-return]
            plan,
            lambda t: continuation(self._details(client_call_details, t, plan), request_iterator),
        )


def aio_interceptors(resilience: Resilience) -> list[grpc.aio.ClientInterceptor]:
    """One interceptor per call shape, all over the same policies and state."""
    return [
        AioUnaryUnaryInterceptor(resilience),
        AioStreamUnaryInterceptor(resilience),
        AioUnaryStreamInterceptor(resilience),
        AioStreamStreamInterceptor(resilience),
    ]


# Sync twins: the same CallPlan, with blocking waits.
