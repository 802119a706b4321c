"""Hedged unary calls: a second attempt sent when the first is slow, the first answer wins.

:class:`~eventwire.client._core.HedgeState` decides (when to launch, which
outcome settles the call, which losers to cancel); this module only launches
and waits, as asyncio tasks (:func:`aio_hedge`) or grpc futures
(:func:`sync_hedge`).
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from eventwire.client._core import CallPlan, HedgeState
from eventwire.client._exceptions import rpc_errors

__all__ = ["aio_hedge", "sync_hedge"]


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
