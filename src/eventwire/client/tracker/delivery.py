"""The tracker's background work on its event loop: sessions, pauses, spills, fsyncs, adoption.

:meth:`Delivery.start` binds to the running loop, adopts leftover spools,
opens the channel and starts three tasks: the delivery loop (one
:class:`~eventwire.client.tracker.session.Session` after another, with backoff
between failed ones and a spill to the spool when the server stays
unreachable), the fsync loop (overflow writes made durable in groups), and the
adoption loop (spools of processes that died meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

from eventwire._rpc import ANALYTICS_METHODS
from eventwire.api import analytics_pb2
from eventwire.client._backoff import backoff
from eventwire.client._channel import plain_aio_channel
from eventwire.client._config import ClientConfig
from eventwire.client._core import Resilience
from eventwire.client._drivers import AioDriver
from eventwire.client._policy import RetryPolicy
from eventwire.client.tracker.aio import Signals, offload, wait
from eventwire.client.tracker.config import TrackerConfig
from eventwire.client.tracker.report import Reporter
from eventwire.client.tracker.session import Session, Window
from eventwire.client.tracker.spill import Spiller
from eventwire.client.tracker.state import Pipeline

__all__ = ["INGEST_METHOD", "Delivery"]

log = logging.getLogger("eventwire.client")

INGEST_METHOD: Final = ANALYTICS_METHODS["IngestEvents"]
_FLUSH_RECHECK: Final = 0.1


class Delivery:
    """What runs on the tracker's loop, and the state those tasks share."""

    def __init__(
        self,
        target: str,
        config: TrackerConfig,
        client: ClientConfig,
        *,
        core: Pipeline,
        spiller: Spiller,
        reporter: Reporter,
        signals: Signals,
    ) -> None:
        self.target = target
        self.config = config
        self.client = client
        self.core = core
        self.spiller = spiller
        self.reporter = reporter
        self.signals = signals
        # One stream is one call: its breaker (and metrics, tracing) are the
        # channel's, and it has no deadline and no retries.
        self.resilience = Resilience(target, client)
        self.window = Window(config.window)
        self.flush_target = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.channel: Any = None
        self.grpc_started = False
        self._ingest: Any = None
        self._starting: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._streams = 0
        self._retry = RetryPolicy(
            initial_backoff=0.05, max_backoff=config.max_retry_delay, jitter="equal"
        )
        # Jitter, not cryptography.
        self._rng = client.rng or random.Random()  # noqa: S311

    # -- start, stop, flush ------------------------------------------------------------

    async def start(self) -> None:
        if self.tasks:
            return
        if self._starting is not None:
            await asyncio.shield(self._starting)
            return
        loop = asyncio.get_running_loop()
        self._starting = loop.create_future()
        try:
            self.signals.bind(loop)
            await self._adopt()
            self.channel = plain_aio_channel(
                self.target, self.client.credentials, self.client.options
            )
            self.grpc_started = True
            ingest = self.channel.stream_stream(
                INGEST_METHOD,
                request_serializer=None,
                response_deserializer=analytics_pb2.IngestAck.FromString,
            )
            driver = AioDriver(self.resilience)
            self._ingest = lambda requests: driver.bidi_stream(
                INGEST_METHOD, ingest, requests, None
            )
            self.tasks = [
                loop.create_task(self._run(), name="eventwire-tracker"),
                loop.create_task(self._sync_loop(), name="eventwire-tracker-fsync"),
            ]
            if self.spiller.spool is not None:
                self.tasks.append(loop.create_task(self._adopt_loop(), name="eventwire-adopt"))
            # Anything queued before start() is due now.
            self.signals.wake.set()
        finally:
            self._starting.set_result(None)

    def autostart(self, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``start()`` on the caller's running loop, if it has one (else it waits)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # queued; delivered once start() runs
        task = loop.create_task(start())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def open_stream(self, requests: AsyncIterator[bytes]) -> Any:
        return self._ingest(requests)

    async def stop(self) -> None:
        """Stop the tasks (a spill or fsync under way finishes first) and the channel."""
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def settle(self, epoch: int, timeout: float | None) -> bool:
        """Wait until no event of ``epoch`` or before is outstanding; False on timeout."""
        core, settled = self.core, self.signals.settled
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush_target = max(self.flush_target, epoch)
        self.signals.wake.set()
        while not core.settled_through(epoch):
            remaining = _FLUSH_RECHECK if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or not self.tasks:
                return False
            settled.clear()
            if core.settled_through(epoch):
                break
            # A bounded wait: drops on other threads settle events without a wake-up.
            await wait(settled, min(remaining, _FLUSH_RECHECK))
        return True

    # -- the tasks ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self.core.spill_requested:
                    await self.spiller.spill(include_unacked=True)
                due = self._work_due(time.monotonic())
                if due is None or due > 0:
                    await self._sleep(self.config.stream_idle_timeout if due is None else due)
                    continue
                self._streams += 1
                outcome = await Session(
                    self._streams,
                    open_stream=self.open_stream,
                    core=self.core,
                    config=self.config,
                    window=self.window,
                    spiller=self.spiller,
                    reporter=self.reporter,
                    signals=self.signals,
                    flush_target=lambda: self.flush_target,
                ).run()
                if outcome.ok:
                    failures = 0
                    continue
                failures = 1 if outcome.progress else failures + 1
                if outcome.unreachable or (failures >= 2 and not outcome.pushback):
                    await self.spiller.spill(include_unacked=True)
                delay = outcome.delay
                if delay is None:
                    delay = backoff(self._retry, failures, self._rng.random())
                await self._sleep(delay, until_elapsed=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not stop delivery for good: log it, pause, go on.
                log.exception("eventwire tracker: unexpected error; continuing")
                await asyncio.sleep(self.config.max_retry_delay)

    def _work_due(self, now: float) -> float | None:
        if self.core.has_unacked():
            return 0.0
        spool = self.spiller.spool
        if spool is not None and spool.unread:
            return 0.0
        return self.core.pending_due(now, self.config.flush_interval, self.flush_target)

    async def _sleep(self, delay: float, *, until_elapsed: bool = False) -> None:
        """Sleep ``delay`` seconds or until woken; ``until_elapsed`` sleeps it all,
        serving spill requests (memory full) meanwhile."""
        wake = self.signals.wake
        end = time.monotonic() + delay
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            wake.clear()
            if self.core.spill_requested:
                await self.spiller.spill(include_unacked=True)
                continue
            if await wait(wake, remaining) and not until_elapsed:
                return

    async def _sync_loop(self) -> None:
        wake = self.signals.sync
        while True:
            await wake.wait()
            wake.clear()
            # Gather the writes of a short while into one fsync.
            await asyncio.sleep(self.config.spool_sync_interval)
            self.signals.sync_started()
            if self.spiller.spool is not None:
                await offload(self.spiller.sync_quietly)

    async def _adopt(self) -> None:
        if self.spiller.spool is None:
            return
        if await offload(self.spiller.adopt):
            self.signals.wake.set()

    async def _adopt_loop(self) -> None:
        # Its own task: a long-lived stream must not keep a dead process's
        # spool (a forked child's, say) waiting.
        while True:
            await asyncio.sleep(self.config.adopt_interval)
            await self._adopt()
