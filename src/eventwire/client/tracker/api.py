""":class:`Tracker`: ``track()``, ``start()``, ``flush()``, ``close()``, and what it is made of.

A tracker is the pieces of this package wired together for one process: the
I/O-free :class:`~.state.Pipeline`, the :class:`~.spill.Spiller` over the disk
spool, the :class:`~.delivery.Delivery` tasks on the event loop, and the
:class:`~.report.Reporter` for the application's hooks. After fork() the child
gets fresh pieces of its own (never the parent's queue, counters or files).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Unpack

from eventwire._ids import uuid7
from eventwire.client._exceptions import EventRejectedError
from eventwire.client.tracker import lifecycle
from eventwire.client.tracker.aio import Signals, offload
from eventwire.client.tracker.config import TrackerConfig, TrackerOptions, stream_client
from eventwire.client.tracker.delivery import Delivery
from eventwire.client.tracker.framing import MAX_EVENT_BYTES, encode_event, frame_event
from eventwire.client.tracker.report import Reporter
from eventwire.client.tracker.spill import Spiller
from eventwire.client.tracker.state import Pipeline
from eventwire.client.tracker.stats import DropReason, TrackerStats

__all__ = ["Tracker"]


class Tracker:
    """Buffered, acknowledged, spool-backed delivery of analytics events (async).

    Use it as ``async with Tracker(target, TrackerConfig(spool_dir=...)) as tracker:``
    or call :meth:`start` and :meth:`close`. :meth:`track` may be called from any
    thread; the tracker's work runs on the event loop it was started on. Keyword
    arguments: see :class:`~eventwire.client.tracker.config.TrackerOptions`
    (``client=ClientConfig(...)``, or its ``breaker``, ``credentials``, ``token``,
    ``channel_options``; ``on_drop``, ``on_error``).
    """

    def __init__(
        self,
        target: str,
        config: TrackerConfig | None = None,
        *,
        _managed: bool = False,
        **options: Unpack[TrackerOptions],
    ) -> None:
        self.target = target
        self.config = config or TrackerConfig()
        self.client = stream_client(options)
        self._on_drop = options.get("on_drop")
        self._on_error = options.get("on_error")
        self._pid = os.getpid()
        self._spool_only = False
        self._managed = _managed
        self._fresh()
        if self.client.metrics is not None:
            self.client.metrics.watch_tracker(self)
        if not _managed:
            lifecycle.register(self)

    def _fresh(self) -> None:
        """New pieces: at construction, and in a forked child."""
        self._core = Pipeline(self.config.limits())
        self._reporter = Reporter(self._core, self._on_drop, self._on_error)
        self._signals = Signals()
        self._spiller = Spiller(
            self.config.new_spool(), self._core, self._reporter, self._signals.sync_soon
        )
        self._delivery = Delivery(
            self.target,
            self.config,
            self.client,
            core=self._core,
            spiller=self._spiller,
            reporter=self._reporter,
            signals=self._signals,
        )
        self._closed = False
        self._close_result: bool | None = None

    # -- public API --------------------------------------------------------------------

    def track(
        self,
        event_name: str,
        *,
        user_id: str = "",
        properties: Mapping[str, str] | None = None,
        timestamp: int | float | dt.datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue one event; returns its ``event_id`` at once.

        Never waits for the network and never raises because of it. ``timestamp``
        is epoch milliseconds (or an aware datetime) and defaults to now, so a
        spooled event keeps the time it happened. Wrong argument types raise
        ``TypeError``; content the server would refuse is reported to
        ``on_error`` as :class:`EventRejectedError` (and counted as rejected).
        """
        if os.getpid() != self._pid:
            self._after_fork_in_child()
        eid = event_id or uuid7()
        encoded = encode_event(event_name, user_id, properties, timestamp, eid)
        core = self._core
        if self._closed:
            core.count_drop(DropReason.CLOSED)
            self._reporter.drop(eid, DropReason.CLOSED)
            return eid
        if len(encoded) > MAX_EVENT_BYTES:
            core.count_local_rejection()
            violation = f"encoded event is {len(encoded)} bytes; at most {MAX_EVENT_BYTES}"
            self._reporter.error(EventRejectedError(eid, [("event", violation)]))
            return eid
        item = frame_event(encoded)
        if self._spool_only:
            # A forked child that cannot use gRPC: every event goes to its own lane.
            epoch = core.admit()
            if self._spiller.spool is None:
                core.refused(epoch, DropReason.FORK_WITHOUT_SPOOL)
                self._reporter.drop(eid, DropReason.FORK_WITHOUT_SPOOL)
            else:
                self._spiller.overflow(eid, item, epoch)
            return eid
        offer = core.offer(item)
        if offer.wake:
            self._signals.wake_up()
        if not offer.queued:
            self._spiller.overflow(eid, item, offer.epoch)
        elif not self._managed and self._signals.loop is None:
            self._delivery.autostart(self.start)
        return eid

    async def start(self) -> None:
        """Bind to the running event loop, adopt leftover spools, and start delivering."""
        if self._closed or self._spool_only:
            return
        await self._delivery.start()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked before this call is acknowledged, rejected or dropped.

        Returns False if ``timeout`` seconds passed first (events stay queued or
        spooled and keep being delivered).
        """
        if self._spool_only:
            await offload(self._spiller.sync_quietly)
            return self._core.outstanding_total() == 0
        epoch = self._core.new_epoch()
        if self._core.settled_through(epoch):
            return True
        if not self._delivery.tasks and not self._closed:
            await self.start()
        return await self._delivery.settle(epoch, timeout)

    async def close(self, timeout: float | None = 10.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop; returns True if everything was acked.

        Whatever is still in memory then goes to the spool (when there is one)
        for the next run to deliver; without a spool it is dropped and reported.
        Later ``track()`` calls drop their events (``DropReason.CLOSED``).
        """
        if self._close_result is not None:
            return self._close_result
        if self._spool_only:
            self._closed = True
            await offload(self._spiller.close)
            lifecycle.forget(self)
            self._close_result = False
            return False
        delivered = await self.flush(timeout)
        self._closed = True
        await self._delivery.stop()
        await offload(self._spiller.keep_leftovers)
        lifecycle.forget(self)
        self._close_result = delivered and self._core.outstanding_total() == 0
        return self._close_result

    @property
    def stats(self) -> TrackerStats:
        return self._core.stats(*self._spiller.sizes())

    @property
    def spool_lane(self) -> Path | None:
        """The spool directory this process writes to, once it has written one."""
        return self._spiller.lane

    async def __aenter__(self) -> Tracker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- exit and fork (called by lifecycle) --------------------------------------------

    def _at_exit(self) -> None:
        # The event loop is gone by now (asyncio.run returned): no network, but
        # memory can still reach the spool.
        if self._close_result is not None:
            return
        self._closed = True
        loop = self._signals.loop
        if loop is not None and loop.is_running():
            return  # someone else's running loop: it is not ours to stop
        self._spiller.keep_leftovers()

    def _after_fork_in_child(self) -> None:
        """The child starts with an empty pipeline of its own, never the parent's."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        # gRPC cannot be used in a child once the parent has started it (its
        # core state and threads do not survive fork()): such a child writes
        # to its own spool lane, for the parent or the next run to deliver.
        self._spool_only = self._delivery.grpc_started or self._spool_only
        lifecycle.inherit(self._delivery, self._core, self._signals)
        if self._spiller.spool is not None:
            self._spiller.spool.forget_after_fork()
        self._fresh()
