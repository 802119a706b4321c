"""One ``IngestEvents`` stream: resend what is unacknowledged, send until idle or broken, read acks.

A session writes batches through a request generator of its own and reads
acks concurrently; it ends when the server ends the stream, the stream
breaks, the circuit is open, or no ack came for ``ack_timeout`` while batches
waited for one (a blackholed link shows no other symptom). Whatever stays
unacknowledged is resent by the next session; the server's dedupe makes that safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import grpc

from eventwire.client._exceptions import (
    CircuitOpenError,
    RpcError,
    parse_pushback,
    rpc_errors,
)
from eventwire.client.tracker.aio import offload, wait
from eventwire.client.tracker.framing import Batch

if TYPE_CHECKING:
    from eventwire.client.tracker.aio import Signals
    from eventwire.client.tracker.config import TrackerConfig
    from eventwire.client.tracker.report import Reporter
    from eventwire.client.tracker.spill import Spiller
    from eventwire.client.tracker.state import Pipeline

__all__ = ["Outcome", "Session", "Window"]

log = logging.getLogger("eventwire.client")

_STOP_TIMEOUT: Final = 5.0

OpenStream = Callable[[AsyncIterator[bytes]], Any]


@dataclass(slots=True)
class Outcome:
    ok: bool = False
    progress: bool = False
    code: grpc.StatusCode | None = None
    delay: float | None = None
    """A pause the server or breaker asked for (pushback, circuit open)."""
    unreachable: bool = False
    pushback: bool = False


class Window:
    """The congestion window (AIMD) over batches in flight, kept across sessions.

    Halved on every pushback, grown by one per window's worth of acks, so a
    struggling server gets fewer batches at once rather than the same burst
    again after each pause.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = limit
        self._acks = 0

    def acked(self) -> None:
        if self.size < self.limit:
            self._acks += 1
            if self._acks >= self.size:
                self.size += 1
                self._acks = 0

    def pushed_back(self) -> None:
        self.size = max(1, self.size // 2)
        self._acks = 0


class Session:
    """One stream of a :class:`~eventwire.client.tracker.delivery.Delivery`.

    Its collaborators come in explicitly, all owned by the delivery and kept
    across sessions; ``flush_target`` is read afresh (a flush may raise it
    while the stream is up).
    """

    def __init__(
        self,
        number: int,
        *,
        open_stream: OpenStream,
        core: Pipeline,
        config: TrackerConfig,
        window: Window,
        spiller: Spiller,
        reporter: Reporter,
        signals: Signals,
        flush_target: Callable[[], int],
    ) -> None:
        self.number = number
        self.open_stream = open_stream
        self.core = core
        self.config = config
        self.window = window
        self.spiller = spiller
        self.reporter = reporter
        self.signals = signals
        self.flush_target = flush_target
        self.outcome = Outcome()
        self._last_ack = time.monotonic()

    async def run(self) -> Outcome:
        self.core.count("streams")
        # Requests go through our own generator rather than call.write(): when a
        # call dies, grpc leaves the task feeding a write()-style call pending
        # forever, while a generator we end ourselves lets it finish.
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        try:
            call = self.open_stream(_drain(outbox))
        except CircuitOpenError as exc:
            return self._failed(exc)
        reader = asyncio.ensure_future(self._read_acks(call))
        writer = asyncio.ensure_future(self._write_batches(outbox))
        tick = min(1.0, self.config.ack_timeout / 4)
        try:
            waiting: set[asyncio.Future[None]] = {reader, writer}
            while True:
                done, _ = await asyncio.wait(
                    waiting, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                if reader in done:
                    return self._finish(reader)
                if writer in done:
                    waiting = {reader}
                    if not writer.cancelled() and writer.exception() is not None:
                        log.error("eventwire tracker: sending failed", exc_info=writer.exception())
                        call.cancel()
                if self._ack_overdue():
                    self.core.count("stream_errors")
                    log.warning(
                        "eventwire tracker: no ack for %.1fs; abandoning the stream",
                        self.config.ack_timeout,
                    )
                    self.outcome.unreachable = True
                    self.outcome.code = grpc.StatusCode.DEADLINE_EXCEEDED
                    return self.outcome
        finally:
            for task in (reader, writer):
                task.cancel()
            call.cancel()
            # Bounded: a task that ignored its cancellation must not stall delivery.
            stopped, stuck = await asyncio.wait({reader, writer}, timeout=_STOP_TIMEOUT)
            for finished in stopped:
                if not finished.cancelled():
                    finished.exception()  # retrieved: it was reported above, or is moot
            if stuck:
                log.error("eventwire tracker: a stream task ignored cancellation: %s", stuck)
            _end(outbox)

    def _finish(self, reader: asyncio.Future[None]) -> Outcome:
        if reader.cancelled():
            # The call was cancelled under the reader (grpc raises CancelledError).
            self.core.count("stream_errors")
            return self.outcome
        error = reader.exception()
        if error is None:
            # The server ended the stream cleanly; anything unacked goes again.
            self.outcome.ok = not self.core.has_unacked()
            return self.outcome
        if not isinstance(error, RpcError):
            self.core.count("stream_errors")
            log.error("eventwire tracker: reading acks failed", exc_info=error)
            return self.outcome
        return self._failed(error)

    def _failed(self, error: RpcError) -> Outcome:
        outcome = self.outcome
        self.core.count("stream_errors")
        outcome.code = error.status_code
        if isinstance(error, CircuitOpenError):
            outcome.unreachable = True
            outcome.delay = max(error.retry_after, 0.01)
        elif error.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            outcome.pushback = True
            self.core.count("pushbacks")
            self.window.pushed_back()
            pushback = parse_pushback(error.trailing_metadata())
            if pushback is not None and pushback > 0:
                outcome.delay = pushback / 1000
        self.reporter.error(error)
        return outcome

    def _ack_overdue(self) -> bool:
        oldest = self.core.oldest_unacked_sent_at()
        if oldest is None:
            return False
        return time.monotonic() - max(oldest, self._last_ack) > self.config.ack_timeout

    async def _read_acks(self, call: Any) -> None:
        with rpc_errors():
            async for ack in call:
                batch = self.core.acknowledge(ack)
                if batch is None:
                    continue
                self._last_ack = time.monotonic()
                self.outcome.progress = True
                self.window.acked()
                self.spiller.acked(batch)
                for rejection in batch.rejections(ack):
                    self.reporter.error(rejection)
                if ack.flagged:
                    self.reporter.flagged(ack.flagged)
                self.signals.settled.set()
                self.signals.wake.set()

    async def _write_batches(self, outbox: asyncio.Queue[bytes | None]) -> None:
        wake, core, config = self.signals.wake, self.core, self.config
        idle_since: float | None = None
        while True:
            wake.clear()
            if core.spill_requested:
                # Memory is full while the stream is up: spill what is queued,
                # not what is in flight (its acks may still come).
                await self.spiller.spill(include_unacked=False)
            room = core.in_flight(self.number) < self.window.size
            if room:
                # Batches a broken stream left unacked go first, oldest first.
                batch = core.next_resend(self.number) or await self._next_batch()
                if batch is not None:
                    idle_since = None
                    core.mark_sent(batch, time.monotonic(), self.number)
                    await outbox.put(batch.encode())
                    continue
            now = time.monotonic()
            timeout = config.stream_idle_timeout
            if not core.has_unacked():
                idle_since = idle_since or now
                if now - idle_since >= config.stream_idle_timeout:
                    await outbox.put(None)  # half-close: the server ends the stream
                    return
                timeout = idle_since + config.stream_idle_timeout - now
            due = core.pending_due(now, config.flush_interval, self.flush_target())
            if due is not None and room:
                timeout = min(timeout, max(due, 0.001))
            await wait(wake, timeout)

    async def _next_batch(self) -> Batch | None:
        spool = self.spiller.spool
        limits = self.core.limits
        # The spool holds the oldest events: it goes first.
        while spool is not None and spool.unread:
            batch, more = await offload(
                self.spiller.read_batch, limits.max_batch_events, limits.max_batch_bytes
            )
            if batch is not None:
                return batch
            if not more:
                break
        now = time.monotonic()
        due = self.core.pending_due(now, self.config.flush_interval, self.flush_target())
        if due == 0:
            return self.core.take_memory_batch()
        return None


async def _drain(outbox: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await outbox.get()) is not None:
        yield item


def _end(outbox: asyncio.Queue[bytes | None]) -> None:
    """Let the request generator finish, whatever state the call is in."""
    while not outbox.empty():
        outbox.get_nowait()
    outbox.put_nowait(None)
