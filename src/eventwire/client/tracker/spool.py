"""The tracker's disk spool: a bounded, crash-safe FIFO of framed events in segment files.

Each process writes only to its own lane, created on its first write; lanes
whose lock is free (their process exited, crashed, or closed its tracker) are
adopted by the next tracker that looks, and replayed oldest first. A failed
append truncates the file back, so that torn tails never sit between valid
records (the record format is in :mod:`.records`, the files in :mod:`.segments`).

Durability: records are written with ``pwrite`` (in the page cache once
:meth:`Spool.append` returns, so they survive the *process* being killed) and
made durable against power loss by :meth:`Spool.sync` (``fdatasync``, plus an
``fsync`` of the directory when files were created). A segment is deleted once
every record in it is acknowledged; if the process dies before that, the next
run resends those records and the server's dedupe absorbs them (at most one
segment's worth).

Thread-safety: one lock guards the metadata; reading runs outside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eventwire.client._exceptions import SpoolError, SpoolFullError
from eventwire.client.tracker.records import frame, parse
from eventwire.client.tracker.segments import (
    Lane,
    Segment,
    failed,
    free_lanes,
    fsync_dir,
    new_lane,
    new_segment,
    release,
    remove_lane,
)

__all__ = ["Spool", "SpoolError", "SpoolFullError", "SpoolRead"]

log = logging.getLogger("eventwire.client")


@dataclass(frozen=True, slots=True)
class SpoolRead:
    events: list[bytes]
    runs: list[tuple[int, int]]
    segment: Segment
    lost: list[tuple[int, int]] = field(default_factory=list)
    """Labels of records found damaged behind ``events``: they cannot be sent."""


class Spool:
    """A bounded, crash-safe FIFO of framed events on disk, shared by no one."""

    def __init__(
        self, root: str | os.PathLike[str], *, max_bytes: int, segment_bytes: int = 4 << 20
    ) -> None:
        if max_bytes < 64 * 1024:
            raise ValueError("max_spool_bytes must be at least 64 KiB")
        if segment_bytes < 64 * 1024:
            raise ValueError("spool segments must be at least 64 KiB")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max_bytes)
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        """In replay order: adopted lanes' segments (oldest lane first), then ours."""
        self._lanes: dict[Path, Lane] = {}
        self._own: Lane | None = None
        self._active: Segment | None = None
        self._next_segment = 1
        self._bytes = 0
        self._dirty: set[Segment] = set()
        self._dirs_dirty: set[Path] = set()
        self._closed = False

    # -- accounting ------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def events(self) -> int:
        """Records not yet acknowledged: unread or in flight."""
        with self._lock:
            return sum(s.records - s.acked_records for s in self._segments)

    @property
    def unread(self) -> int:
        with self._lock:
            return sum(s.records - s.read_records for s in self._segments)

    @property
    def lane(self) -> Path | None:
        """The directory this process writes to (created on the first write)."""
        return self._own.path if self._own is not None else None

    # -- adoption ----------------------------------------------------------------------

    def adopt(self) -> int:
        """Take over lanes no live process holds; returns how many events they carry."""
        found = 0
        for lane, segments in free_lanes(self.root, self._known):
            with self._lock:
                if self._closed:
                    release(lane, segments)
                    return found
                self._lanes[lane.path] = lane
                # Adopted lanes replay before anything this process wrote itself.
                cut = next(
                    (i for i, s in enumerate(self._segments) if s.lane.own), len(self._segments)
                )
                self._segments[cut:cut] = segments
                self._bytes += sum(s.size for s in segments)
                found += sum(s.records for s in segments)
                if not segments:
                    self._remove_lane(lane)
        return found

    def _known(self, path: Path) -> bool:
        with self._lock:
            return self._closed or path in self._lanes

    # -- writing -----------------------------------------------------------------------

    def append(self, events: Sequence[bytes], runs: Sequence[tuple[int, int]]) -> None:
        """Write ``events`` after everything else, all or nothing (durable after :meth:`sync`)."""
        if not events:
            return
        data = b"".join([frame(e) for e in events])
        with self._lock:
            if self._closed:
                raise SpoolError("spool is closed")
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"spool {self.root} is full: {self._bytes} of {self.max_bytes} bytes used"
                )
            seg = self._writable(len(data))
            try:
                written = 0
                while written < len(data):
                    written += os.pwrite(seg.fd, data[written:], seg.size + written)
            except OSError as exc:
                self._undo(seg)
                failed(exc, self.root, f"cannot write spool segment {seg.path}")
            seg.size += len(data)
            seg.records += len(events)
            seg.runs.extend(runs)
            self._bytes += len(data)
            self._dirty.add(seg)

    def _undo(self, seg: Segment) -> None:
        try:
            os.ftruncate(seg.fd, seg.size)
        except OSError:
            # Cannot cut the torn tail off: write no more after it.
            seg.sealed = True
            if self._active is seg:
                self._active = None

    def _writable(self, size: int) -> Segment:
        seg = self._active
        if seg is not None and seg.records and seg.size + size > self.segment_bytes:
            seg.sealed = True
            self._active = seg = None
        if seg is not None:
            return seg
        lane = self._own_lane()
        number = self._next_segment
        self._next_segment += 1
        seg = new_segment(self.root, lane, number)
        self._segments.append(seg)
        self._bytes += seg.size
        self._active = seg
        self._dirs_dirty.add(lane.path)
        return seg

    def _own_lane(self) -> Lane:
        if self._own is None:
            self._own = new_lane(self.root)
            self._lanes[self._own.path] = self._own
            self._dirs_dirty.add(self.root)
        return self._own

    def sync(self) -> None:
        """Make everything appended so far durable (fdatasync; fsync of new directory entries)."""
        with self._lock:
            if self._closed:
                return
            # dup()s stay valid even if a segment is deleted meanwhile.
            fds = [os.dup(seg.fd) for seg in self._dirty]
            dirs = list(self._dirs_dirty)
            self._dirty.clear()
            self._dirs_dirty.clear()
        try:
            for fd in fds:
                os.fdatasync(fd)
            for path in dirs:
                with contextlib.suppress(FileNotFoundError):
                    fsync_dir(path)
        except OSError as exc:
            raise SpoolError(f"cannot sync the spool in {self.root}: {exc}") from exc
        finally:
            for fd in fds:
                os.close(fd)

    # -- reading -----------------------------------------------------------------------

    def read(self, max_events: int, max_bytes: int) -> SpoolRead | None:
        """The next unread records, oldest first, as one batch; None if all were read."""
        with self._lock:
            seg = next((s for s in self._segments if s.read_records < s.records), None)
            if seg is None:
                return None
            seg.reading = True
            offset, end = seg.read_offset, seg.size
        try:
            events, consumed, damaged = parse(seg.fd, offset, end, max_events, max_bytes)
        except OSError as exc:
            with self._lock:
                seg.reading = False
            raise SpoolError(f"cannot read spool segment {seg.path}: {exc}") from exc
        with self._lock:
            seg.reading = False
            seg.read_offset = offset + consumed
            seg.read_records += len(events)
            runs = seg.runs.take(len(events))
            lost: list[tuple[int, int]] = []
            if damaged:
                # Changed on disk behind our back: what follows cannot be trusted.
                lost = seg.runs.take(seg.runs.count)
                log.error("spool segment %s is damaged at offset %d", seg.path, seg.read_offset)
                seg.records = seg.read_records
                seg.size = seg.read_offset
                seg.sealed = True
                if self._active is seg:
                    self._active = None
            if not events:
                self._maybe_delete(seg)
        return SpoolRead(events, runs, seg, lost)

    def ack(self, segment: Segment, n: int) -> None:
        """``n`` records read from ``segment`` were acknowledged."""
        with self._lock:
            segment.acked_records += n
            self._maybe_delete(segment)

    def _maybe_delete(self, seg: Segment) -> None:
        if seg.reading or not seg.records or seg.acked_records < seg.records:
            return
        if seg not in self._segments:
            return
        if seg is self._active:
            # Everything written so far is delivered: start the next write afresh.
            self._active = None
        elif not seg.sealed:
            return
        self._segments.remove(seg)
        self._dirty.discard(seg)
        self._bytes -= seg.size
        os.close(seg.fd)
        with contextlib.suppress(OSError):
            seg.path.unlink()
        seg.lane.segments -= 1
        if not seg.lane.own and not seg.lane.segments:
            self._remove_lane(seg.lane)

    def _remove_lane(self, lane: Lane) -> None:
        remove_lane(lane)
        self._lanes.pop(lane.path, None)
        if lane is self._own:
            self._own = None

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Release every file and lock; what is left stays for the next process to adopt."""
        with self._lock:
            if self._closed:
                return
            dirty = list(self._dirty)
            for seg in dirty:
                with contextlib.suppress(OSError):
                    os.fdatasync(seg.fd)
            self._closed = True
            for seg in self._segments:
                os.close(seg.fd)
            self._segments.clear()
            own = self._own
            if own is not None and not own.segments:
                self._remove_lane(own)
            for lane in list(self._lanes.values()):
                os.close(lane.lock_fd)
            self._lanes.clear()
            self._own = None
            self._active = None

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptors without touching the parent's locks.

        ``flock`` locks belong to the open file description the parent still
        holds, so closing the child's copies releases nothing; unlocking would.
        """
        with contextlib.suppress(RuntimeError):
            # The parent may have held the lock at fork time; a new one is free.
            self._lock = threading.Lock()
        for seg in self._segments:
            with contextlib.suppress(OSError):
                os.close(seg.fd)
        for lane in self._lanes.values():
            with contextlib.suppress(OSError):
                os.close(lane.lock_fd)
        self._segments = []
        self._lanes = {}
        self._own = None
        self._active = None
        self._bytes = 0
        self._dirty = set()
        self._dirs_dirty = set()
        self._closed = True
