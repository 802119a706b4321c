"""Hedged unary calls: a second attempt sent when the first is slow, the first answer wins.

:class:`HedgeState` decides, without I/O (when to launch, which outcome
settles the call, which losers to cancel); the rest of this module only launches
and waits, as asyncio tasks (:func:`aio_hedge`) or grpc futures
(:func:`sync_hedge`).
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, NoReturn, TypeVar

import grpc

from eventwire.client._breaker import Permit
from eventwire.client._core import CallPlan
from eventwire.client._exceptions import code_of, rpc_errors, trailers_of

__all__ = ["HedgeState", "aio_hedge", "sync_hedge"]


H = TypeVar("H", bound=Hashable)


class HedgeState(Generic[H]):
    """What a hedged call knows: attempts in flight (by handle) and what failed so far.

    The async path keys attempts by task, the sync path by grpc future; both
    make the same decisions here.
    """

    def __init__(self, plan: CallPlan) -> None:
        assert plan.hedging is not None  # noqa: S101 - only built for hedged plans
        self.policy = plan.hedging
        self.plan = plan
        self.running: dict[H, Permit | None] = {}
        self.last_error: grpc.RpcError | None = None
        self.stop_error: grpc.RpcError | None = None

    def may_launch(self) -> bool:
        throttle = self.plan.res.throttle
        return (
            self.stop_error is None
            and self.plan.attempts < self.policy.max_attempts
            and (self.plan.attempts == 0 or throttle is None or throttle.allows_retry())
        )

    def begin(self) -> tuple[Permit | None, float | None] | None:
        """Leave and timeout for the next hedge, or None when no more may go out."""
        try:
            return self.plan.start_attempt()
        except grpc.RpcError as exc:
            # Breaker open or no time left: no more hedges, but attempts
            # already in flight may still win.
            self.stop_error = exc
            return None

    def settle(self, handle: H, error: BaseException | None) -> bool:
        """True if ``handle`` won; raises (unmapped: the caller runs in ``rpc_errors``)
        if its failure ends the call."""
        permit = self.running.pop(handle)
        if error is None:
            self.plan.succeeded(permit)
            return True
        if not isinstance(error, grpc.RpcError):
            self.plan.cancelled(permit)
            raise error
        code = code_of(error)
        self.plan.failed(permit, code, trailers_of(error))
        self.last_error = error
        if code not in self.policy.non_fatal_codes:
            self.plan.end(code)
            raise error
        return False

    def give_up(self) -> NoReturn:
        """Nothing in flight and nothing more to send: the call's final error."""
        error = self.last_error or self.stop_error
        assert error is not None  # noqa: S101 - the first launch failed, or one attempt did
        self.plan.end(code_of(error))
        raise error

    def abandon(self) -> list[H]:
        """Hand back the permits of attempts still in flight; the caller cancels them."""
        losers = list(self.running)
        for permit in self.running.values():
            self.plan.cancelled(permit)
        self.running.clear()
        return losers


async def aio_hedge(
    plan: CallPlan,
    details: Callable[[float | None], grpc.aio.ClientCallDetails],
    continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
    request: Any,
) -> Any:
    """The finished winning call of hedged attempts ``continuation(details(timeout), request)``.

    ``details(timeout)`` builds each attempt's call details with what remains
    of the call's deadline.
    """
    hedge = _Hedge(plan, details, continuation, request)
    try:
        with rpc_errors(plan):
            return await hedge.run()
    finally:
        await hedge.cancel_losers()


class _Hedge:
    """One hedged async call: launches attempts as tasks; HedgeState decides."""

    def __init__(
        self,
        plan: CallPlan,
        details: Callable[[float | None], grpc.aio.ClientCallDetails],
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        request: Any,
    ) -> None:
        self.state: HedgeState[asyncio.Task[Any]] = HedgeState(plan)
        self.details = details
        self.continuation = continuation
        self.request = request

    async def _attempt(self, timeout: float | None) -> Any:
        call = await self.continuation(self.details(timeout), self.request)
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


def sync_hedge(plan: CallPlan, start: Callable[[float | None], grpc.Future[Any]]) -> Any:
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
