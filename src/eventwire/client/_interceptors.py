"""Policies applied as gRPC client interceptors: one class per call shape over a shared base.

They work on any stub, eventwire's or a user's. Rules they keep:

* call details are never mutated; each attempt gets a new ``ClientCallDetails``
  whose timeout is what remains of the call's single deadline;
* ``asyncio.CancelledError`` always propagates; the attempt in flight is
  cancelled with it and its breaker permit handed back;
* calls with response streams are watched through ``add_done_callback``, not
  awaited, so the caller keeps reading messages as they come;
* every decision (retry or not, how long to sleep) is made by the I/O-free
  :class:`~eventwire.client._core.CallPlan`, shared with the sync interceptors.

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
import queue
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import grpc
from grpc.aio import ClientCallDetails

from eventwire.client._backoff import is_testing
from eventwire.client._breaker import Permit
from eventwire.client._core import SETTLED_AFTER, CallPlan, HedgeState, Resilience, StreamVerdict
from eventwire.client._exceptions import code_of, rpc_errors, trailers_of

__all__ = [
    "AioStreamStreamInterceptor",
    "AioStreamUnaryInterceptor",
    "AioUnaryStreamInterceptor",
    "AioUnaryUnaryInterceptor",
    "SyncStreamStreamInterceptor",
    "SyncStreamUnaryInterceptor",
    "SyncUnaryStreamInterceptor",
    "SyncUnaryUnaryInterceptor",
    "aio_interceptors",
    "sync_interceptors",
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
            return await self._hedge(plan, client_call_details, continuation, request)  # type: ignore[no-any-return]
        return await self._with_retries(  # type: ignore[no-any-return]
            plan, lambda t: continuation(self._details(client_call_details, t, plan), request)
        )

    async def invoke(
        self,
        method: str,
        multicallable: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> Resp:
        """The same policies, driven directly rather than from inside grpc's interceptor chain.

        eventwire's own clients call through here on a channel without
        interceptors: grpcio wraps every intercepted call in an extra task,
        which costs more than all of the policies together.
        """

        plan = self.resilience.plan(method, timeout)
        if plan.hedging is None:
            call = await self._with_retries(
                plan,
                lambda t: multicallable(request, timeout=t, metadata=plan.metadata()),
                awaits=False,
            )
            return await call  # type: ignore[no-any-return]

        async def direct(details: grpc.aio.ClientCallDetails, req: Req) -> Any:
            return multicallable(req, timeout=details.timeout, metadata=plan.metadata())

        details = ClientCallDetails(method, timeout, None, None, None)
        call = await self._hedge(plan, details, direct, request)
        return await call  # type: ignore[no-any-return]

    async def _hedge(
        self,
        plan: CallPlan,
        details: grpc.aio.ClientCallDetails,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        request: Any,
    ) -> Any:
        hedge = _Hedge(self, plan, details, continuation, request)
        try:
            with rpc_errors(plan):
                return await hedge.run()
        finally:
            await hedge.cancel_losers()


class _Hedge:
    """One hedged async call: launches attempts as tasks; HedgeState decides."""

    def __init__(
        self,
        base: _AioBase,
        plan: CallPlan,
        details: grpc.aio.ClientCallDetails,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        request: Any,
    ) -> None:
        self.state: HedgeState[asyncio.Task[Any]] = HedgeState(plan)
        self.base = base
        self.details = details
        self.continuation = continuation
        self.request = request

    async def _attempt(self, timeout: float | None) -> Any:
        call = await self.continuation(
            self.base._details(self.details, timeout, self.state.plan), self.request
        )
        try:
            await call
        except asyncio.CancelledError:
            call.cancel()
            raise
        return call

    async def run(self) -> Any:
        state = self.state
        launch = True
        while True:
            if launch and state.may_launch() and (started := state.begin()) is not None:
                permit, timeout = started
                state.running[asyncio.ensure_future(self._attempt(timeout))] = permit
            if not state.running:
                state.give_up()
            done, _ = await asyncio.wait(
                state.running,
                timeout=state.policy.delay if state.may_launch() else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # Nothing finished within the hedging delay: send the next hedge.
            launch = not done
            for task in done:
                if state.settle(task, task.exception()):
                    return task.result()
                # A non-fatal failure sends the next hedge at once.
                launch = True

    async def cancel_losers(self) -> None:
        losers = self.state.abandon()
        for task in losers:
            task.cancel()
        if losers:
            await asyncio.gather(*losers, return_exceptions=True)


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

    async def invoke(
        self,
        method: str,
        multicallable: grpc.aio.StreamUnaryMultiCallable[Req, Resp],
        requests: list[Req],
        timeout: float | None,
    ) -> Resp:
        """Like :meth:`AioUnaryUnaryInterceptor.invoke`, for a stream that can be resent."""
        plan = self.resilience.plan(method, timeout)
        # A list on purpose (the stubs' types ask for an iterator): each
        # attempt sends it again from the start.
        replayable: Any = requests
        call = await self._with_retries(
            plan,
            lambda t: multicallable(replayable, timeout=t, metadata=plan.metadata()),
            awaits=False,
        )
        return await call  # type: ignore[no-any-return]


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

    def open(
        self,
        method: str,
        multicallable: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> tuple[grpc.aio.UnaryStreamCall[Req, Resp], Callable[[], None]]:
        """Start a resumable server stream directly (WatchAlerts, ExportEvents):
        breaker, and a deadline only if given; never retried here (the caller
        resumes it, see ``client/_resume.py``).

        Returns the call and ``answered``, to call on its first message: the
        breaker's verdict (:class:`~eventwire.client._core.StreamVerdict`).
        """
        call, verdict = self._start_stream(
            method,
            timeout,
            lambda t, md: multicallable(request, timeout=t, metadata=md),
            settle_after=SETTLED_AFTER,
        )
        return call, verdict.answered


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

    def open(
        self,
        method: str,
        multicallable: grpc.aio.StreamStreamMultiCallable[Req, Resp],
        requests: AsyncIterable[Req] | Iterable[Req],
        timeout: float | None,
    ) -> grpc.aio.StreamStreamCall[Req, Resp]:
        """Start a long-lived stream directly: breaker and (only if given) a deadline."""
        call, _ = self._start_stream(
            method,
            timeout,
            lambda t, md: multicallable(requests, timeout=t, metadata=md),  # type: ignore[arg-type]
        )
        return call  # type: ignore[no-any-return]


def aio_interceptors(resilience: Resilience) -> list[grpc.aio.ClientInterceptor]:
    """One interceptor per call shape, all over the same policies and state."""
    return [
        AioUnaryUnaryInterceptor(resilience),
        AioStreamUnaryInterceptor(resilience),
        AioUnaryStreamInterceptor(resilience),
        AioStreamStreamInterceptor(resilience),
    ]


# Sync twins: the same CallPlan, with blocking waits.


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

    def _hedge(self, plan: CallPlan, start: Callable[[float | None], grpc.Future[Any]]) -> Any:
        """Hedged attempts as grpc futures; the same HedgeState as the async path."""
        state: HedgeState[grpc.Future[Any]] = HedgeState(plan)
        finished: queue.SimpleQueue[grpc.Future[Any]] = queue.SimpleQueue()
        try:
            with rpc_errors(plan):
                launch = True
                while True:
                    if launch and state.may_launch() and (started := state.begin()) is not None:
                        permit, timeout = started
                        try:
                            future = start(timeout)
                        except BaseException:
                            plan.cancelled(permit)
                            raise
                        state.running[future] = permit
                        future.add_done_callback(finished.put)
                    if not state.running:
                        state.give_up()
                    delay = state.policy.delay if state.may_launch() else None
                    try:
                        done = finished.get(timeout=delay)
                    except queue.Empty:
                        launch = True  # nothing finished within the hedging delay
                        continue
                    if state.settle(done, None if done.cancelled() else done.exception()):
                        return done.result()
                    launch = True
        finally:
            for loser in state.abandon():
                loser.cancel()

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

    def invoke(
        self,
        method: str,
        multicallable: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> Resp:
        """The policies driven directly on a channel without interceptors, hedging included."""
        plan = self.resilience.plan(method, timeout)

        def start(t: float | None) -> grpc.Future[Any]:
            return multicallable.future(request, timeout=t, metadata=plan.metadata())

        if plan.hedging is not None:
            return self._hedge(plan, start)  # type: ignore[no-any-return]
        return self._with_retries(plan, start).result()  # type: ignore[no-any-return]


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

    def invoke(
        self,
        method: str,
        multicallable: grpc.StreamUnaryMultiCallable[Req, Resp],
        requests: list[Req],
        timeout: float | None,
    ) -> Resp:
        """Like :meth:`SyncUnaryUnaryInterceptor.invoke`, for a client stream sent again
        whole on each attempt."""
        plan = self.resilience.plan(method, timeout)
        result = self._with_retries(
            plan,
            lambda t: multicallable.future(iter(requests), timeout=t, metadata=plan.metadata()),
        )
        return result.result()  # type: ignore[no-any-return]


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

    def open(
        self,
        method: str,
        multicallable: grpc.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> tuple[Any, Callable[[], None]]:
        """The blocking twin of :meth:`AioUnaryStreamInterceptor.open`."""
        plan = self.resilience.plan(method, timeout, retries=False, default_timeout=False)
        call, verdict = self._open_stream(
            plan,
            lambda t: multicallable(request, timeout=t, metadata=plan.metadata()),
            settle_after=SETTLED_AFTER,
        )
        return call, verdict.answered


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

    def open(
        self,
        method: str,
        multicallable: grpc.StreamStreamMultiCallable[Req, Resp],
        requests: Iterator[Req],
        timeout: float | None,
    ) -> Any:
        """The blocking twin of :meth:`AioStreamStreamInterceptor.open`: breaker, and a
        deadline only if given."""
        plan = self.resilience.plan(method, timeout, retries=False, default_timeout=False)
        return self._open(
            plan, lambda t: multicallable(requests, timeout=t, metadata=plan.metadata())
        )


def sync_interceptors(resilience: Resilience) -> list[Any]:
    """One interceptor per call shape, all over the same policies and state."""
    return [
        SyncUnaryUnaryInterceptor(resilience),
        SyncStreamUnaryInterceptor(resilience),
        SyncUnaryStreamInterceptor(resilience),
        SyncStreamStreamInterceptor(resilience),
    ]
