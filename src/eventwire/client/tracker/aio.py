"""The tracker's asyncio plumbing: wake-ups across threads, blocking work off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Signals", "offload", "wait"]

T = TypeVar("T")


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds; True if it was set.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that
    arrives as the event is set (fixed in 3.12), leaving a task that was told
    to stop running on; ``asyncio.timeout`` counts cancellations correctly.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking spool work in a thread; once started it finishes, even on cancel.

    Its effects on the pipeline are applied inside ``fn``, so a cancelled
    caller (``close()`` stopping the task) cannot lose or double them.
    """
    loop = asyncio.get_running_loop()
    try:
        job = loop.run_in_executor(None, functools.partial(fn, *args))
    except RuntimeError:
        # The interpreter is exiting (atexit): no new threads; block briefly instead.
        return fn(*args)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait({job})
        raise


class Signals:
    """The events the tracker's loop waits on, settable from any thread.

    ``wake``: there is work to send or spill. ``sync``: spool writes wait for an
    fsync. ``settled``: an ack settled events (``flush()`` looks again).
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self.wake = asyncio.Event()
        self.sync = asyncio.Event()
        self.settled = asyncio.Event()
        self._sync_requested = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.get_ident()
        if self._sync_requested:
            # Asked for before there was a loop to tell (events spooled before start()).
            self.sync.set()

    def wake_up(self) -> None:
        self._set(self.wake)

    def sync_soon(self) -> None:
        """Ask for one fsync of recent spool writes (many requests, one fsync)."""
        if self._sync_requested:
            return
        self._sync_requested = True
        self._set(self.sync)

    def sync_started(self) -> None:
        self._sync_requested = False

    def _set(self, event: asyncio.Event) -> None:
        loop = self.loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(event.set)
