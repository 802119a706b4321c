"""The tracker's bookkeeping, free of I/O: what is queued, in flight, settled, and counted.

:class:`Pipeline` is the one state both the async :class:`~eventwire.client.Tracker`
and its blocking twin drive. ``track()`` may call :meth:`Pipeline.offer` from
any thread; everything else runs on the tracker's event loop. A single
``threading.Lock`` guards it, held only for a few dictionary and deque
operations, never across I/O.

Events travel as bytes already framed as field 2 of ``EventBatch`` (tag, length,
encoded ``TrackEventRequest``), so a batch is its sequence field followed by a
join of its events: nothing is parsed or encoded twice, in memory or on disk.

Flush accounting uses epochs: each :meth:`Pipeline.new_epoch` (one per
``flush()`` call) starts a new one, every event carries the epoch it was
tracked in (run-length encoded in :class:`Runs`, alongside events wherever they
go: memory, a batch, the spool), and a flush is done once no event of its
epoch or an earlier one is outstanding. Events recovered from a spool belong
to epoch 0, so every flush waits for them too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from eventwire.api import analytics_pb2

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "Batch",
    "Limits",
    "Pipeline",
    "Runs",
    "TrackerStats",
    "event_id_of",
    "frame_event",
]

MAX_BATCH_EVENTS: Final = 10_000
"""The server's limit on events per ``EventBatch``."""
MAX_EVENT_BYTES: Final = 32 * 1024
"""The server's limit on one encoded event (``analytics.proto``)."""
_EVENTS_TAG: Final = b"\x12"  # EventBatch.events: field 2, length-delimited
_SEQUENCE_TAG: Final = b"\x08"  # EventBatch.sequence: field 1, varint


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame_event(encoded: bytes) -> bytes:
    """``encoded`` (a ``TrackEventRequest``) framed as one entry of ``EventBatch.events``."""
    return _EVENTS_TAG + varint(len(encoded)) + encoded


def _unframe(item: bytes) -> bytes:
    pos = 1
    while item[pos] & 0x80:
        pos += 1
    return item[pos + 1 :]


def event_id_of(item: bytes) -> str:
    """The event_id of a framed event (parsed only on the rare paths that need it)."""
    try:
        return str(analytics_pb2.TrackEventRequest.FromString(_unframe(item)).event_id)
    except Exception:  # noqa: BLE001 - a damaged record still gets reported, without its id
        return ""


class Runs:
    """Epoch labels of a FIFO of events, run-length encoded: ``[(epoch, count), ...]``."""

    __slots__ = ("_runs", "count")

    def __init__(self, runs: Iterable[tuple[int, int]] = ()) -> None:
        self._runs: deque[list[int]] = deque()
        self.count = 0
        self.extend(runs)

    def push(self, epoch: int, n: int = 1) -> None:
        if n <= 0:
            return
        if self._runs and self._runs[-1][0] == epoch:
            self._runs[-1][1] += n
        else:
            self._runs.append([epoch, n])
        self.count += n

    def extend(self, runs: Iterable[tuple[int, int]]) -> None:
        for epoch, n in runs:
            self.push(epoch, n)

    def extendleft(self, runs: Sequence[tuple[int, int]]) -> None:
        for epoch, n in reversed(runs):
            if n <= 0:
                continue
            if self._runs and self._runs[0][0] == epoch:
                self._runs[0][1] += n
            else:
                self._runs.appendleft([epoch, n])
            self.count += n

    def take(self, n: int) -> list[tuple[int, int]]:
        """Remove the labels of the first ``n`` events and return them."""
        if n > self.count:
            raise ValueError(f"cannot take {n} of {self.count} labels")
        taken: list[tuple[int, int]] = []
        while n:
            run = self._runs[0]
            k = min(n, run[1])
            taken.append((run[0], k))
            run[1] -= k
            n -= k
            if not run[1]:
                self._runs.popleft()
        self.count -= sum(k for _, k in taken)
        return taken

    def first_epoch(self) -> int | None:
        return self._runs[0][0] if self._runs else None

    def items(self) -> list[tuple[int, int]]:
        return [(e, n) for e, n in self._runs]

    def clear(self) -> None:
        self._runs.clear()
        self.count = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a tracker's memory and batches; validated here, once."""

    max_queue_events: int = 100_000
    max_queue_bytes: int = 32 << 20
    max_batch_events: int = 1_000
    max_batch_bytes: int = 1 << 20
    window: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_batch_events must be in [1, {MAX_BATCH_EVENTS}]")
        # The server accepts 4 MiB messages; leave room for framing.
        if not 64 * 1024 <= self.max_batch_bytes <= 3 << 20:
            raise ValueError("max_batch_bytes must be in [64 KiB, 3 MiB]")
        if self.max_queue_events < self.max_batch_events:
            raise ValueError("max_queue_events must be at least max_batch_events")
        if self.max_queue_bytes < self.max_batch_bytes:
            raise ValueError("max_queue_bytes must be at least max_batch_bytes")
        if not 1 <= self.window <= 64:
            raise ValueError("window must be in [1, 64] batches")


@dataclass(frozen=True, slots=True)
class TrackerStats:
    """A snapshot of a tracker's counters. Every event ``track()`` was given ends in exactly
    one of ``acked``, ``rejected`` or ``dropped``, or is still ``outstanding``::

        tracked + recovered == acked + rejected + dropped + outstanding
    """

    tracked: int
    """Calls to ``track()`` that returned (programming errors raise instead)."""
    recovered: int
    """Events found in the spool on start or adopted from a dead process's spool."""
    queued: int
    """Events put in the memory queue."""
    spooled: int
    """Event writes to the spool: memory overflow, spills during outages, on close/exit."""
    sent: int
    """Event transmissions; a batch resent after a broken stream counts again."""
    acked: int
    """Events the server acknowledged: ``accepted + duplicate``."""
    accepted: int
    """Events the server newly stored."""
    duplicate: int
    """Events the server already had (a resend whose first acknowledgement was lost)."""
    rejected: int
    """Invalid events, reported to ``on_error`` and never retried."""
    dropped: int
    """Events given up on, each reported to ``on_drop`` (see the drop policy)."""
    outstanding: int
    """Events not settled yet: in memory, in flight, or in the spool."""
    memory_events: int
    memory_bytes: int
    spool_events: int
    spool_bytes: int
    batches_sent: int
    batches_acked: int
    batches_resent: int
    streams: int
    """``IngestEvents`` streams opened."""
    stream_errors: int
    pushbacks: int
    """Pauses made because the server answered RESOURCE_EXHAUSTED."""
    spool_errors: int


@dataclass(slots=True)
class Counters:
    tracked: int = 0
    recovered: int = 0
    queued: int = 0
    spooled: int = 0
    sent: int = 0
    acked: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    dropped: int = 0
    batches_sent: int = 0
    batches_acked: int = 0
    batches_resent: int = 0
    streams: int = 0
    stream_errors: int = 0
    pushbacks: int = 0
    spool_errors: int = 0


@dataclass(eq=False, slots=True)
class Batch:
    """Events sent together under one sequence number until their ack."""

    seq: int
    events: list[bytes]
    runs: list[tuple[int, int]]
    nbytes: int
    source: Any = None
    """The spool segment the events were read from; None for events from memory."""
    sent_at: float = 0.0
    sends: int = 0
    stream: int = 0
    """The stream it was last sent on (streams count from 1)."""

    def encode(self) -> bytes:
        return b"".join([_SEQUENCE_TAG, varint(self.seq), *self.events])


@dataclass(frozen=True, slots=True)
class Rejection:
    event_id: str
    violations: list[tuple[str, str]]


@dataclass(slots=True)
class _Offer:
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
    epoch: int = 1
    outstanding: dict[int, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    next_seq: int = 1
    spill_requested: bool = False

    # -- any thread ---------------------------------------------------------------

    def offer(self, item: bytes) -> _Offer:
        """Queue ``item`` in memory if the bounds allow; else the caller spools or drops it."""
        size = len(item)
        limits = self.limits
        with self.lock:
            c = self.counters
            c.tracked += 1
            epoch = self.epoch
            self.outstanding[epoch] = self.outstanding.get(epoch, 0) + 1
            if (
                len(self.pending) + self.inflight_events >= limits.max_queue_events
                or self.pending_bytes + self.inflight_bytes + size > limits.max_queue_bytes
            ):
                # Wake the loop to spill once, not for every refused event.
                wake = not self.spill_requested
                self.spill_requested = True
                return _Offer(False, epoch, wake)
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
            return _Offer(True, epoch, wake)

    def settle_unqueued(self, epoch: int, *, spooled: bool, rejected: bool = False) -> None:
        """The fate of an event :meth:`offer` did not queue: spooled, rejected or dropped."""
        with self.lock:
            c = self.counters
            if spooled:
                c.spooled += 1
                return
            self._settle_runs([(epoch, 1)])
            if rejected:
                c.rejected += 1
            else:
                c.dropped += 1

    def count_local_rejection(self) -> None:
        with self.lock:
            self.counters.tracked += 1
            self.counters.rejected += 1

    def count_drop(self) -> None:
        """An event refused at the door (closed tracker): tracked and dropped at once."""
        with self.lock:
            self.counters.tracked += 1
            self.counters.dropped += 1

    def new_epoch(self) -> int:
        """Start a new epoch; returns the one that just ended (what a flush waits for)."""
        with self.lock:
            self.epoch += 1
            return self.epoch - 1

    def settled_through(self, epoch: int) -> bool:
        with self.lock:
            return all(e > epoch for e in self.outstanding)

    def outstanding_total(self) -> int:
        with self.lock:
            return sum(self.outstanding.values())

    def stats(self, spool_events: int, spool_bytes: int) -> TrackerStats:
        with self.lock:
            c = self.counters
            return TrackerStats(
                tracked=c.tracked,
                recovered=c.recovered,
                queued=c.queued,
                spooled=c.spooled,
                sent=c.sent,
                acked=c.acked,
                accepted=c.accepted,
                duplicate=c.duplicate,
                rejected=c.rejected,
                dropped=c.dropped,
                outstanding=sum(self.outstanding.values()),
                memory_events=len(self.pending) + self.inflight_events,
                memory_bytes=self.pending_bytes + self.inflight_bytes,
                spool_events=spool_events,
                spool_bytes=spool_bytes,
                batches_sent=c.batches_sent,
                batches_acked=c.batches_acked,
                batches_resent=c.batches_resent,
                streams=c.streams,
                stream_errors=c.stream_errors,
                pushbacks=c.pushbacks,
                spool_errors=c.spool_errors,
            )

    # -- the tracker's loop only ---------------------------------------------------

    def recovered(self, n: int) -> None:
        with self.lock:
            self.counters.recovered += n
            self.outstanding[0] = self.outstanding.get(0, 0) + n

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

    def acknowledge(self, ack: analytics_pb2.IngestAck) -> tuple[Batch | None, list[Rejection]]:
        """Settle the batch ``ack`` is for; None if no such batch is waiting."""
        with self.lock:
            batch = self.unacked.pop(ack.sequence, None)
            if batch is None:
                return None, []
            c = self.counters
            c.batches_acked += 1
            c.accepted += ack.accepted
            c.duplicate += ack.duplicates
            c.acked += ack.accepted + ack.duplicates
            c.rejected += ack.rejected
            if batch.source is None:
                self.inflight_events -= len(batch.events)
                self.inflight_bytes -= batch.nbytes
            self._settle_runs(batch.runs)
        rejections = [
            Rejection(
                r.event_id
                or (event_id_of(batch.events[r.index]) if 0 <= r.index < len(batch.events) else ""),
                [(v.field, v.description) for v in r.violations],
            )
            for r in ack.rejections
        ]
        return batch, rejections

    def _settle_runs(self, runs: Iterable[tuple[int, int]]) -> None:
        outstanding = self.outstanding
        for epoch, n in runs:
            left = outstanding.get(epoch, 0) - n
            if left > 0:
                outstanding[epoch] = left
            else:
                outstanding.pop(epoch, None)

    def take_for_spill(self, *, include_unacked: bool) -> tuple[list[bytes], list[tuple[int, int]]]:
        """Remove what memory holds, oldest first, for the spool.

        ``include_unacked`` (only while no stream is open) also takes batches from
        memory that were sent but not acknowledged: their fate is unknown, and
        the spool resends them later, which dedupe makes safe.
        """
        with self.lock:
            self.spill_requested = False
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

    def put_back(self, events: list[bytes], runs: list[tuple[int, int]]) -> None:
        """Return events a spill could not write to the front of the queue (they are the oldest)."""
        if not events:
            return
        with self.lock:
            if not self.pending:
                self.oldest_pending_at = time.monotonic()
            self.pending.extendleft(reversed(events))
            self.pending_runs.extendleft(runs)
            self.pending_bytes += sum(map(len, events))

    def count_spooled(self, n: int) -> None:
        with self.lock:
            self.counters.spooled += n

    def drop_settled(self, runs: Iterable[tuple[int, int]], n: int) -> None:
        """Events given up on after they were queued (spool damage, close without a spool)."""
        with self.lock:
            self._settle_runs(runs)
            self.counters.dropped += n

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

    def unacked_count(self) -> int:
        with self.lock:
            return len(self.unacked)
