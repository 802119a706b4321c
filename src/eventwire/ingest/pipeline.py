"""The ingest pipeline: a bounded queue in front of the store, drained by one writer.

Many concurrent RPCs share one transaction (group commit): while the store
commits one batch, new requests queue up, and the next commit takes all of them
at once. Durability therefore costs one fsync per batch, not per request, and
the event loop never waits on the disk.

How long to gather (adaptive, never a fixed timer). A commit has a fixed cost
(a transaction, an fsync, waking the callers) whatever it carries, so when
requests arrive faster than they can be served it pays to let a few more
join. Two signals say so: the requests that arrived per commit round (from one
commit to the next), and whether the event loop was busy all along (its
thread's CPU time against the wall clock, over windows of a few
milliseconds): a saturated loop has requests waiting in it that the pipeline
cannot see yet. When either says more are coming, the writer waits for them,
but never longer than ``max_delay`` after the first arrived. A lone caller
makes one request per round and leaves the loop idle between them, so its
request is committed at once: by the caller itself when the writer is idle
(one task switch less), as ClickHouse's adaptive insert timeout and
PostgreSQL's ``commit_siblings`` do it.

A request's future resolves only after the transaction holding it committed;
that is what lets the servicers answer ``success=true`` honestly. Running a
batch once taken (its span, its transaction, the replies, failures) is
:mod:`eventwire.ingest.commit`'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import Tracer

from eventwire._errors import Overloaded, Unavailable
from eventwire.ingest.commit import GroupCommit, Item
from eventwire.observability.metrics import ServerMetrics
from eventwire.store.base import AlertRow, EventValues, Store, StoreUnavailable
from eventwire.store.quarantine import QuarantineRow

log = logging.getLogger("eventwire.pipeline")

_SMOOTHING: Final = 0.25
"""Weight of the latest commit round in the requests-per-round estimate."""
_ROUND_SLACK: Final = 0.1
"""A round estimate this close above a whole number rounds down: one stray
request beside a lone caller must not make it wait for a second that never comes."""
_LEAD_BELOW: Final = 1.5
"""Below this many requests per round a caller commits its own request."""
_BUSY_WINDOW: Final = 0.005
"""Seconds over which the loop's busy share is measured."""
_SATURATED: Final = 0.9
"""Share of a window the loop's thread spent on the CPU that counts as saturated."""
_MAX_SKIP: Final = 1024
"""Most commits a fruitless gathering on a saturated loop is not retried for."""
_MAX_GATHER: Final = 4096
"""Requests one gathering waits for at most (``max_batch`` bounds the rows)."""

_MIN_PUSHBACK_MS: Final = 10
_MAX_PUSHBACK_MS: Final = 5_000


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class IngestPipeline(GroupCommit):
    """Group-commits events and alerts; see the module docstring.

    ``max_pending`` bounds the rows waiting (backpressure: beyond it, callers get
    :class:`Overloaded` with a retry hint); ``max_batch`` bounds the rows per
    transaction, so one commit never holds the writer for long.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 10_000,
        max_pending: int = 200_000,
        on_store_health: Callable[[bool, StoreUnavailable | None], None] | None = None,
        metrics: ServerMetrics | None = None,
        tracer: Tracer | None = None,
        max_delay: float = 0.002,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch:
            raise ValueError("need 1 <= max_batch <= max_pending")
        if not 0 <= max_delay <= 1:
            raise ValueError("need 0 <= max_delay <= 1 second")
        super().__init__(store, on_store_health, metrics, tracer)
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: deque[Item] = deque()
        self._pending = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the writer runs on (set by :meth:`start`); the pipeline's
        methods must be awaited there (see ``IngestService._core``)."""
        self._closing = False
        self._max_delay = max_delay
        # Requests per commit round, smoothed; see the module docstring.
        self._round = 1.0
        self._arrived = 0
        """Requests queued since the last commit began."""
        self._filled: asyncio.Future[None] | None = None
        """Resolved when a gathering writer has the requests it waits for."""
        self._want = 0
        self._busy = False
        """True while a commit (the writer's or a lone caller's own) runs."""
        self._saturated = False
        self._window = (time.perf_counter(), time.thread_time())
        # A saturated loop may still serve one caller (a fast client close by):
        # a gathering that nobody joined backs off, doubling up to _MAX_SKIP.
        self._skip = 0
        self._backoff = 1
        self._led: set[asyncio.Future[int | str]] = set()
        self.led_commits = 0
        """Requests their own callers committed (the writer was idle, nobody else waited)."""
        self.gatherings = 0
        """Times the writer waited for more requests before committing."""
        if metrics is not None:
            metrics.watch_queue(lambda: self._pending)

    @property
    def pending(self) -> int:
        """Rows queued or being committed."""
        return self._pending

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._task = self.loop.create_task(self._run(), name="eventwire-ingest-writer")

    async def add_events(
        self, rows: Sequence[EventValues], quarantine: Sequence[QuarantineRow] = ()
    ) -> int:
        """Commit ``rows`` (with other requests' rows), and ``quarantine`` in the same
        transaction; return how many of ``rows`` were new."""
        result = await self._wait(Item(rows, None, self._future(), quarantine))
        assert isinstance(result, int)  # noqa: S101 - the writer resolves event items with ints
        return result

    async def add_alert(self, row: AlertRow) -> str:
        """Commit ``row``; return its tracking id (the first one's, for a repeated key)."""
        result = await self._wait(Item(None, row, self._future()))
        assert isinstance(result, str)  # noqa: S101 - the writer resolves alert items with str
        return result

    async def _wait(self, item: Item) -> int | str:
        if self._tracer is not None:
            # The request's own (RPC) span: the group commit that carries it links
            # to it. Unsampled requests are left out, so that a batch of them all
            # costs no span work (what head sampling is for).
            span_context = trace.get_current_span().get_span_context()
            if span_context.is_valid and span_context.trace_flags.sampled:
                item.span = span_context
                item.queued_ns = time.time_ns()
        if (
            not self._busy
            and not self._queue
            and self._round < _LEAD_BELOW
            and not (self._saturated and not self._skip)
            and self._store.cancel_safe_commit
            and not self._closing
            and self._task is not None
        ):
            return await self._lead(item)
        return await self._submit(item)

    async def _lead(self, item: Item) -> int | str:
        """Commit a lone caller's request in its own task: the writer is idle and
        nobody else is waiting, so handing it over would only cost a task switch."""
        self._busy = True
        self._pending += item.weight
        self._arrived = 0
        self._led.add(item.future)
        self.led_commits += 1
        self._sample_load()
        try:
            await self._commit([item])
        finally:
            self._pending -= item.weight
            self._busy = False
            self._led.discard(item.future)
            self._round += _SMOOTHING * (1 - self._round)
            if self._queue:  # arrived meanwhile: the writer takes them
                self._wakeup.set()
        return await item.future

    async def close(self, timeout: float | None = None) -> None:
        """Stop accepting, commit everything queued, then stop the writer."""
        self._closing = True
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._drained()), timeout)
        except TimeoutError:
            self._task.cancel()
            self._fail(list(self._queue), Unavailable("server shut down before committing"))
            self._queue.clear()
            log.error("ingest pipeline did not drain within %.1fs", timeout)  # noqa: TRY400 - expected, no traceback

    # -- internals -----------------------------------------------------------------

    async def _drained(self) -> None:
        assert self._task is not None  # noqa: S101 - only called once started
        await self._task
        if self._led:  # callers committing their own requests
            await asyncio.wait(self._led)

    @staticmethod
    def _future() -> asyncio.Future[int | str]:
        return asyncio.get_running_loop().create_future()

    def _submit(self, item: Item) -> asyncio.Future[int | str]:
        if self._closing:
            raise Unavailable("server is shutting down")
        # An oversize item is still admitted into an empty queue, so that every
        # request the validator accepted can eventually be stored.
        if self._pending and self._pending + item.weight > self._max_pending:
            if self._metrics is not None:
                self._metrics.overloaded.inc()
            raise Overloaded(
                f"ingest queue is full ({self._pending} rows pending); retry later",
                retry_after_ms=self._pushback_ms(),
            )
        self._queue.append(item)
        self._pending += item.weight
        self._arrived += 1
        filled = self._filled
        if filled is None:
            self._wakeup.set()
        elif len(self._queue) >= self._want and not filled.done():
            filled.set_result(None)
        return item.future

    def _pushback_ms(self) -> int:
        if self._rate <= 0:
            return 100
        drain_ms = int(self._pending / self._rate)
        return max(_MIN_PUSHBACK_MS, min(_MAX_PUSHBACK_MS, drain_ms))

    def _take(self) -> list[Item]:
        batch = [self._queue.popleft()]
        rows = batch[0].weight
        while self._queue and rows + self._queue[0].weight <= self._max_batch:
            item = self._queue.popleft()
            rows += item.weight
            batch.append(item)
        return batch

    async def _run(self) -> None:
        while True:
            if not self._queue or self._busy:
                if self._closing and not self._queue:
                    return
                if not self._queue:
                    # Idle: the next request starts a new burst.
                    self._round = 1.0
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather()
            batch = self._take()
            self._busy = True
            self._sample_load()
            arrived, self._arrived = self._arrived, 0
            self._round += _SMOOTHING * (arrived - self._round)
            try:
                await self._commit(batch)
            finally:
                self._busy = False
                self._pending -= sum(item.weight for item in batch)

    def _sample_load(self) -> None:
        """Once a window has passed: was the loop's thread on the CPU nearly all of it?"""
        wall = time.perf_counter()
        started, cpu_before = self._window
        if wall - started >= _BUSY_WINDOW:
            cpu = time.thread_time()
            self._saturated = cpu - cpu_before >= _SATURATED * (wall - started)
            self._window = (wall, cpu)

    async def _gather(self) -> None:
        """Wait, up to ``max_delay`` in all, for as many requests as a round brings."""
        want = min(math.ceil(self._round - _ROUND_SLACK), _MAX_GATHER)
        probing = want < 2 and self._saturated
        if probing:
            if self._skip:
                self._skip -= 1
                return
            want = 2
        queued = len(self._queue)
        if queued >= want or self._closing or not self._max_delay:
            return
        loop = asyncio.get_running_loop()
        self.gatherings += 1
        self._want = want
        filled = self._filled = loop.create_future()
        timer = loop.call_later(self._max_delay, _resolve, filled)
        try:
            await filled
        finally:
            timer.cancel()
            self._filled = None
        if probing:
            if len(self._queue) > queued:
                self._backoff = 1
            else:  # nobody came: a lone caller on a busy loop
                self._skip = self._backoff
                self._backoff = min(2 * self._backoff, _MAX_SKIP)
