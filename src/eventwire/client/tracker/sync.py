""":class:`SyncTracker`: the same :class:`Tracker` on a private event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Unpack

from eventwire.client._config import ClientConfig
from eventwire.client.tracker import lifecycle
from eventwire.client.tracker.api import Tracker
from eventwire.client.tracker.config import TrackerConfig, TrackerOptions
from eventwire.client.tracker.stats import TrackerStats

__all__ = ["SyncTracker"]


class SyncTracker:
    """The blocking twin of :class:`Tracker`: the same tracker on a private loop thread.

    ``track()`` is as cheap as the async one; :meth:`flush` and :meth:`close`
    block the calling thread. The loop thread is a daemon, started on first use;
    at interpreter exit the tracker is closed (up to ``atexit_timeout``). It
    takes the same arguments as :class:`Tracker`.
    """

    def __init__(
        self,
        target: str,
        config: TrackerConfig | None = None,
        **options: Unpack[TrackerOptions],
    ) -> None:
        self._tracker = Tracker(target, config, _managed=True, **options)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._close_result: bool | None = None
        lifecycle.register(self)

    @property
    def target(self) -> str:
        return self._tracker.target

    @property
    def config(self) -> TrackerConfig:
        return self._tracker.config

    @property
    def client(self) -> ClientConfig:
        return self._tracker.client

    @property
    def stats(self) -> TrackerStats:
        return self._tracker.stats

    @property
    def spool_lane(self) -> Path | None:
        return self._tracker.spool_lane

    def track(
        self,
        event_name: str,
        *,
        user_id: str = "",
        properties: Mapping[str, str] | None = None,
        timestamp: int | float | dt.datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue one event; returns its ``event_id`` at once. See :meth:`Tracker.track`."""
        if self._thread is None and not self._tracker._spool_only:
            self._ensure_started()
        return self._tracker.track(
            event_name,
            user_id=user_id,
            properties=properties,
            timestamp=timestamp,
            event_id=event_id,
        )

    def start(self) -> None:
        """Start the loop thread now (``track()`` does it on first use)."""
        self._ensure_started()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything tracked before is acknowledged; False on timeout."""
        loop = self._ensure_started()
        if loop is None:
            return self._run_here(self._tracker.flush(timeout))
        return self._call(loop, self._tracker.flush(timeout), timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush for up to ``timeout`` seconds, keep the rest in the spool, stop the thread."""
        with self._lock:
            if self._close_result is not None:
                return self._close_result
            loop, thread = self._loop, self._thread
            if loop is None and not self._tracker._spool_only:
                loop, thread = self._spawn()
            if loop is None or thread is None:
                result = self._run_here(self._tracker.close(timeout))
            else:
                try:
                    result = self._call(loop, self._tracker.close(timeout), timeout)
                finally:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(timeout=5.0)
            self._close_result = result
            lifecycle.forget(self)
            return result

    def __enter__(self) -> SyncTracker:
        self._ensure_started()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is not None:
            return self._loop
        with self._lock:
            if self._loop is not None or self._tracker._spool_only:
                return self._loop
            if self._close_result is not None:
                return None
            loop, _ = self._spawn()
            return loop

    def _spawn(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_serve_loop, args=(loop,), name="eventwire-tracker", daemon=True
        )
        thread.start()
        asyncio.run_coroutine_threadsafe(self._tracker.start(), loop).result()
        self._loop, self._thread = loop, thread
        return loop, thread

    @staticmethod
    def _call(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, bool], timeout: float | None
    ) -> bool:
        future: Future[bool] = asyncio.run_coroutine_threadsafe(coro, loop)
        # The coroutine keeps its own deadline; the slack covers the hop between threads.
        return future.result(None if timeout is None else timeout + 30.0)

    @staticmethod
    def _run_here(coro: Coroutine[Any, Any, bool]) -> bool:
        # Spool-only (forked child): the coroutine does no network I/O.
        return asyncio.run(coro)

    def _after_fork_in_child(self) -> None:
        lifecycle.inherit(self._loop, self._thread)
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._tracker._after_fork_in_child()

    def _at_exit(self) -> None:
        if self._close_result is not None:
            return
        self.close(self._tracker.config.atexit_timeout)


def _serve_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
