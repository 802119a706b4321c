"""The tracker's bookkeeping, free of I/O: what is queued, in flight, spilling, settled, counted.

:class:`Pipeline` is the one state the tracker drives. ``track()`` may call
:meth:`Pipeline.offer` from any thread; everything else runs on the tracker's
event loop or its spool worker. A single ``threading.Lock`` guards it, held
only for a few dictionary and deque operations, never across I/O.

**Memory** is every event only this process holds: queued, sent and not
acknowledged (from memory), and *spilling* (taken from memory for the spool,
not yet written there). All three count against ``max_queue_events`` and
``max_queue_bytes``, so a SIGKILL loses at most that much: an event leaves
memory only once it is acknowledged or its spool write has returned. What a
``flush()`` waits for is counted in :class:`~.epochs.Epochs`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventwire.api import analytics_pb2
from eventwire.client.tracker.config import Limits
from eventwire.client.tracker.epochs import Epochs, Runs
from eventwire.client.tracker.framing import Batch
from eventwire.client.tracker.stats import Counters, TrackerStats

__all__ = ["Offer", "Pipeline"]


@dataclass(slots=True)
class Offer:
    queued: bool
    epoch: int
    wake: bool = False


@dataclass(slots=True)
class Pipeline:
    limits: Limits
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: deque[bytes] = field(default_factory=deque)
    pending_runs: Runs = field(default_factory=Runs)
    pending_bytes: int = 0
    oldest_pending_at: float = 0.0
    unacked: dict[int, Batch] = field(default_factory=dict)
    """Batches sent (or to be resent) and not acknowledged, in sequence order."""
    inflight_events: int = 0
    """Events of unacked batches that came from memory (they count against its bounds)."""
    inflight_bytes: int = 0
    spilling_events: int = 0
    """Events taken from memory for the spool whose write has not returned yet."""
    spilling_bytes: int = 0
    epochs: Epochs = field(default_factory=Epochs)
    counters: Counters = field(default_factory=Counters)
    next_seq: int = 1
    spill_requested: bool = False

    # -- any thread ---------------------------------------------------------------

    def offer(self, item: bytes) -> Offer:
        """Queue ``item`` in memory if the bounds allow; else the caller spools or drops it."""
        size = len(item)
        limits = self.limits
        with self.lock:
            c = self.counters
            c.tracked += 1
            epoch = self.epochs.add()
            events = len(self.pending) + self.inflight_events + self.spilling_events
            nbytes = self.pending_bytes + self.inflight_bytes + self.spilling_bytes
            if events >= limits.max_queue_events or nbytes + size > limits.max_queue_bytes:
                # Wake the loop to spill once, not for every refused event.
                wake = not self.spill_requested
                self.spill_requested = True
                return Offer(False, epoch, wake)
            if not self.pending:
                self.oldest_pending_at = time.monotonic()
            self.pending.append(item)
            self.pending_runs.push(epoch)
            self.pending_bytes += size
            c.queued += 1
            # Wake the sender when the queue stops being empty (so it starts the
            # flush-interval clock) and when a batch is full; not once per event.
            n = len(self.pending)
            wake = n in (1, limits.max_batch_events) or (
                self.pending_bytes >= limits.max_batch_bytes
                and self.pending_bytes - size < limits.max_batch_bytes
            )
            return Offer(True, epoch, wake)

    def admit(self) -> int:
        """Count a tracked event that bypasses memory (a forked child's); returns its epoch."""
        with self.lock:
            self.counters.tracked += 1
            return self.epochs.add()

    def overflowed(self) -> None:
        """An event :meth:`offer` refused was written to the spool instead."""
        with self.lock:
            self.counters.spooled += 1

    def refused(self, epoch: int, reason: str) -> None:
        """An event :meth:`offer` refused could not be spooled either: dropped."""
        with self.lock:
            self.epochs.settle([(epoch, 1)])
            self.counters.drop(reason)

    def count_local_rejection(self) -> None:
        with self.lock:
            self.counters.tracked += 1
            self.counters.rejected += 1

    def count_drop(self, reason: str) -> None:
        """An event refused at the door (closed tracker): tracked and dropped at once."""
        with self.lock:
            self.counters.tracked += 1
            self.counters.drop(reason)

    def new_epoch(self) -> int:
        """Start a new epoch; returns the one that just ended (what a flush waits for)."""
        with self.lock:
            return self.epochs.new()

    def settled_through(self, epoch: int) -> bool:
        with self.lock:
            return self.epochs.settled_through(epoch)

    def outstanding_total(self) -> int:
        with self.lock:
            return self.epochs.total()

    def stats(self, spool_events: int, spool_bytes: int) -> TrackerStats:
        with self.lock:
            return self.counters.snapshot(
                outstanding=self.epochs.total(),
                memory_events=len(self.pending) + self.inflight_events + self.spilling_events,
                memory_bytes=self.pending_bytes + self.inflight_bytes + self.spilling_bytes,
                spool_events=spool_events,
                spool_bytes=spool_bytes,
            )

    # -- the tracker's loop and spool worker ---------------------------------------

    def recovered(self, n: int) -> None:
        with self.lock:
            self.counters.recovered += n
            self.epochs.add(n, epoch=0)

    def pending_due(self, now: float, interval: float, flush_target: int) -> float | None:
        """Seconds until pending events should go out (0: now), or None if there are none."""
        with self.lock:
            if not self.pending:
                return None
            limits = self.limits
            first = self.pending_runs.first_epoch()
            if (
                len(self.pending) >= limits.max_batch_events
                or self.pending_bytes >= limits.max_batch_bytes
                or (first is not None and first <= flush_target)
            ):
                return 0.0
            return max(0.0, self.oldest_pending_at + interval - now)

    def take_memory_batch(self) -> Batch | None:
        limits = self.limits
        with self.lock:
            if not self.pending:
                return None
            events: list[bytes] = []
            nbytes = 0
            pending = self.pending
            while pending and len(events) < limits.max_batch_events:
                size = len(pending[0])
                if events and nbytes + size > limits.max_batch_bytes:
                    break
                events.append(pending.popleft())
                nbytes += size
            self.pending_bytes -= nbytes
            runs = self.pending_runs.take(len(events))
            if pending:
                self.oldest_pending_at = time.monotonic()
            self.inflight_events += len(events)
            self.inflight_bytes += nbytes
            return self._register(events, runs, nbytes, None)

    def add_spool_batch(self, events: list[bytes], runs: list[tuple[int, int]], ref: Any) -> Batch:
        with self.lock:
            return self._register(events, runs, sum(map(len, events)), ref)

    def _register(
        self, events: list[bytes], runs: list[tuple[int, int]], nbytes: int, ref: Any
    ) -> Batch:
        batch = Batch(self.next_seq, events, runs, nbytes, ref)
        self.next_seq += 1
        self.unacked[batch.seq] = batch
        return batch

    def mark_sent(self, batch: Batch, now: float, stream: int) -> None:
        with self.lock:
            batch.stream = stream
            c = self.counters
            c.sent += len(batch.events)
            c.batches_sent += 1
            if batch.sends:
                c.batches_resent += 1
            batch.sends += 1
            batch.sent_at = now

    def acknowledge(self, ack: analytics_pb2.IngestAck) -> Batch | None:
        """Settle the batch ``ack`` is for; None if no such batch is waiting."""
        with self.lock:
            batch = self.unacked.pop(ack.sequence, None)
            if batch is None:
                return None
            c = self.counters
            c.batches_acked += 1
            c.accepted += ack.accepted
            c.duplicate += ack.duplicates
            c.quarantined += ack.quarantined
            c.acked += ack.accepted + ack.duplicates + ack.quarantined
            c.rejected += ack.rejected
            if batch.source is None:
                self.inflight_events -= len(batch.events)
                self.inflight_bytes -= batch.nbytes
            self.epochs.settle(batch.runs)
        return batch

    def _take_memory(self, include_unacked: bool) -> tuple[list[bytes], list[tuple[int, int]]]:
        events: list[bytes] = []
        runs: list[tuple[int, int]] = []
        if include_unacked:
            for seq, batch in list(self.unacked.items()):
                if batch.source is None:
                    del self.unacked[seq]
                    events.extend(batch.events)
                    runs.extend(batch.runs)
            self.inflight_events = 0
            self.inflight_bytes = 0
        events.extend(self.pending)
        runs.extend(self.pending_runs.items())
        self.pending.clear()
        self.pending_runs.clear()
        self.pending_bytes = 0
        return events, runs

    def take_for_spill(self, *, include_unacked: bool) -> tuple[list[bytes], list[tuple[int, int]]]:
        """Move what memory holds, oldest first, to *spilling*: still memory, for the bounds
        and for what a crash can lose, until :meth:`spilled` or :meth:`put_back`.

        ``include_unacked`` (only while no stream is open) also takes batches from
        memory that were sent but not acknowledged: their fate is unknown, and
        the spool resends them later, which dedupe makes safe.
        """
        with self.lock:
            self.spill_requested = False
            events, runs = self._take_memory(include_unacked)
            self.spilling_events += len(events)
            self.spilling_bytes += sum(map(len, events))
            return events, runs

    def spilled(self, n: int, nbytes: int) -> None:
        """``n`` spilling events (``nbytes``) are in the spool now: no longer memory's."""
        with self.lock:
            self.spilling_events -= n
            self.spilling_bytes -= nbytes
            self.counters.spooled += n
            self.counters.spilled += n

    def put_back(self, events: list[bytes], runs: list[tuple[int, int]]) -> None:
        """Spilling events the spool could not take go back to the front of the queue."""
        if not events:
            return
        nbytes = sum(map(len, events))
        with self.lock:
            self.spilling_events -= len(events)
            self.spilling_bytes -= nbytes
            if not self.pending:
                self.oldest_pending_at = time.monotonic()
            self.pending.extendleft(reversed(events))
            self.pending_runs.extendleft(runs)
            self.pending_bytes += nbytes

    def drop_settled(self, runs: Iterable[tuple[int, int]], n: int, reason: str) -> None:
        """Events given up on that memory does not hold (spool damage)."""
        with self.lock:
            self.epochs.settle(runs)
            self.counters.drop(reason, n)

    def drop_memory(self, reason: str) -> list[bytes]:
        """Give up on everything memory holds (a stopped tracker that cannot spool it)."""
        with self.lock:
            events, runs = self._take_memory(include_unacked=True)
            self.epochs.settle(runs)
            self.counters.drop(reason, len(events))
            return events

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self.counters, name, getattr(self.counters, name) + n)

    def has_unacked(self) -> bool:
        with self.lock:
            return bool(self.unacked)

    def in_flight(self, stream: int) -> int:
        """Batches sent on ``stream`` and not acknowledged yet."""
        with self.lock:
            return sum(1 for b in self.unacked.values() if b.stream == stream)

    def next_resend(self, stream: int) -> Batch | None:
        """The oldest unacked batch not yet sent on ``stream`` (its earlier stream broke)."""
        with self.lock:
            return next((b for b in self.unacked.values() if b.stream != stream), None)

    def oldest_unacked_sent_at(self) -> float | None:
        with self.lock:
            times = [b.sent_at for b in self.unacked.values() if b.sends]
            return min(times) if times else None
