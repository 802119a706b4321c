"""Buffered, acknowledged delivery: :class:`Tracker` and its blocking twin, :class:`SyncTracker`.

::

    track() ──► memory queue (bounded: events and bytes) ──► batches ──► IngestEvents stream
       │              │ full, or the server unreachable            ▲   (window of unacked
       │              ▼                                            │    batches, resent
       └─ full ─► disk spool (bounded, fsynced, crash-safe) ───────┘    after a break)

``track()`` never waits for the network and never raises on network trouble: it
encodes the event, gives it a UUIDv7 ``event_id``, and queues it. A background
task on the tracker's event loop sends batches over one bidirectional
``IngestEvents`` stream, keeps up to ``window`` batches unacknowledged, and
settles each batch when its ack arrives. When the stream breaks, every unacked
batch is sent again on the next stream; the server stores each ``event_id``
once, so a resend is counted as a duplicate, never stored twice.

When the server stays unreachable (two failed streams in a row, the circuit
breaker open, or no ack for ``ack_timeout``), or when memory is full, what
memory holds is written to the spool; the spool is replayed, oldest first,
before anything newer leaves memory, also by the next process when this one
dies. Events are dropped only when memory AND the spool are full (or the spool
cannot be written): the new event is refused, counted in ``dropped`` (and in
``drops`` by its reason, and in the ``eventwire_tracker_dropped*`` metrics)
and passed to ``on_drop``; events already accepted are never thrown out to make room.

**What a crash of the process can lose.** A SIGKILL (or OOM kill, segfault,
``os._exit``) loses only events that memory alone holds: queued, sent and not
yet acknowledged, or taken from memory for the spool whose write has not
returned yet. All three count against the same bounds, so the loss is at
most ``max_queue_events`` events and at most ``max_queue_bytes`` bytes
(100,000 and 32 MiB by default), whatever the timing of the kill. Everything
written to the spool survives: a record is in the kernel's page cache once its
``pwrite`` returns. Power loss can also take spool writes not yet fsynced: at
most ``spool_sync_interval`` (50 ms) of memory-overflow writes; spills are
fsynced before they count as done.

The blocking twin runs the same :class:`Tracker` on a private event loop in a
daemon thread: no logic is written twice. The pieces, each in its module:
``api`` (Tracker), ``sync`` (SyncTracker), ``config`` (TrackerConfig, limits),
``stats`` (TrackerStats, DropReason), ``state`` (the I/O-free bookkeeping),
``framing`` (events as bytes), ``spill`` (memory to and from the spool),
``spool``/``segments``/``records`` (the disk format), ``session`` (one stream),
``delivery`` (the background tasks), ``report`` (the hooks), ``lifecycle``
(exit and fork), ``aio`` (asyncio plumbing).
"""

from __future__ import annotations

from eventwire.client._exceptions import EventRejectedError, SpoolError, SpoolFullError
from eventwire.client.tracker.api import Tracker
from eventwire.client.tracker.config import TrackerConfig, TrackerOptions
from eventwire.client.tracker.stats import DroppedEvent, DropReason, TrackerStats
from eventwire.client.tracker.sync import SyncTracker

__all__ = [
    "DropReason",
    "DroppedEvent",
    "EventRejectedError",
    "SpoolError",
    "SpoolFullError",
    "SyncTracker",
    "Tracker",
    "TrackerConfig",
    "TrackerOptions",
    "TrackerStats",
]
