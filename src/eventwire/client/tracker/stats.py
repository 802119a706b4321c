"""What a tracker counts: every event's fate, every drop by its reason, as one snapshot type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

__all__ = ["Counters", "DropReason", "DroppedEvent", "TrackerStats"]


class DropReason:
    """Why an event was dropped (``DroppedEvent.reason``, the keys of ``TrackerStats.drops``)."""

    MEMORY_FULL: Final = "memory_full"
    """Memory is full and no spool is configured."""
    SPOOL_FULL: Final = "spool_full"
    """Memory is full and the spool is at ``max_spool_bytes`` or its disk is full."""
    SPOOL_ERROR: Final = "spool_error"
    """Memory is full and the spool cannot be written (I/O error, permissions)."""
    SPOOL_DAMAGED: Final = "spool_damaged"
    """A spooled record was found corrupted on disk when read back."""
    CLOSED: Final = "closed"
    """``track()`` after ``close()``."""
    CLOSE_TIMEOUT: Final = "close_timeout"
    """``close()`` timed out with events in memory and no spool to keep them."""
    FORK_WITHOUT_SPOOL: Final = "fork_without_spool"
    """A forked child cannot use gRPC (the parent had) and has no spool to keep events in."""

    ALL: Final = (
        MEMORY_FULL,
        SPOOL_FULL,
        SPOOL_ERROR,
        SPOOL_DAMAGED,
        CLOSED,
        CLOSE_TIMEOUT,
        FORK_WITHOUT_SPOOL,
    )


@dataclass(frozen=True, slots=True)
class DroppedEvent:
    """Passed to ``on_drop``: an event that will not be delivered."""

    event_id: str
    """Empty when the event could not be decoded (``spool_damaged``)."""
    reason: str
    """One of the :class:`DropReason` values."""


@dataclass(frozen=True, slots=True)
class TrackerStats:
    """A snapshot of a tracker's counters. Every event ``track()`` was given ends in exactly
    one of ``acked``, ``rejected`` or ``dropped``, or is still ``outstanding``::

        tracked + recovered == acked + rejected + dropped + outstanding
        dropped == sum(drops.values())
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
    """Events the server acknowledged: ``accepted + duplicate + quarantined``."""
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
    """Events only memory holds: queued, in flight, or on their way to the spool. A
    SIGKILL loses at most these, and they never exceed ``max_queue_events``."""
    memory_bytes: int
    """Their encoded size; never above ``max_queue_bytes``."""
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
    spilled: int = 0
    """Events moved from memory to the spool (counted in ``spooled`` too)."""
    drops: Mapping[str, int] = field(default_factory=dict)
    """``dropped`` by :class:`DropReason`, every reason present (0 if none)."""
    quarantined: int = 0
    """Events the server's tracking plan stored apart, in its quarantine (not counted
    as events until replayed there; docs/tracking-plans.md)."""


@dataclass(slots=True)
class Counters:
    tracked: int = 0
    recovered: int = 0
    queued: int = 0
    spooled: int = 0
    spilled: int = 0
    sent: int = 0
    acked: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0
    rejected: int = 0
    batches_sent: int = 0
    batches_acked: int = 0
    batches_resent: int = 0
    streams: int = 0
    stream_errors: int = 0
    pushbacks: int = 0
    spool_errors: int = 0
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DropReason.ALL, 0))

    @property
    def dropped(self) -> int:
        # Derived, never stored: a drop counted without its reason cannot exist.
        return sum(self.drops.values())

    def drop(self, reason: str, n: int = 1) -> None:
        if reason not in self.drops:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.drops[reason] += n

    def snapshot(self, **gauges: int) -> TrackerStats:
        """The counters, with ``gauges`` (what is outstanding, in memory, spooled now)."""
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(gauges, drops=dict(self.drops), dropped=self.dropped)
        return TrackerStats(**values)
