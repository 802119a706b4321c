"""Awaiting a coroutine on another thread's event loop, as if it ran here."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as a task of ``loop`` and await its result from this loop.

    The task runs in a copy of this context, so context variables (request id,
    tenant, the current trace span) carry over; cancelling the awaiting task
    cancels the remote one. ``asyncio.run_coroutine_threadsafe`` does neither.
    """
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    context = contextvars.copy_context()
    started: list[asyncio.Task[T]] = []

    def finish(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(task.result())

    def start() -> None:
        if not done.set_running_or_notify_cancel():
            coro.close()  # cancelled before it could start
            return
        task = loop.create_task(coro, context=context)
        started.append(task)
        task.add_done_callback(finish)

    loop.call_soon_threadsafe(start)
    try:
        return await asyncio.wrap_future(done)
    except asyncio.CancelledError:
        if started:
            loop.call_soon_threadsafe(started[0].cancel)
        raise
