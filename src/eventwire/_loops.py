"""Awaiting a coroutine on another thread's event loop, as if it ran here."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as a task of ``loop`` and await its result from this loop.

    The task runs in a copy of this context, so context variables (request id,
    tenant, the current trace span) carry over; cancelling the awaiting task
    cancels the remote one. ``asyncio.run_coroutine_threadsafe`` does neither,
    and its ``concurrent.futures`` hand-over (a lock and a condition per call)
    costs more than the two ``call_soon_threadsafe`` used here.
    """
    here = asyncio.get_running_loop()
    result: asyncio.Future[T] = here.create_future()
    started: list[asyncio.Task[T]] = []

    def settle(task: asyncio.Task[T]) -> None:  # on this loop
        if result.done():
            return
        if task.cancelled():
            result.cancel()
        elif (error := task.exception()) is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())

    def start() -> None:  # on ``loop``
        if result.cancelled():
            coro.close()
            return
        task = loop.create_task(coro)
        started.append(task)
        task.add_done_callback(lambda done: here.call_soon_threadsafe(settle, done))

    loop.call_soon_threadsafe(start, context=contextvars.copy_context())
    try:
        return await result
    except asyncio.CancelledError:
        loop.call_soon_threadsafe(lambda: started and started[0].cancel())
        raise
