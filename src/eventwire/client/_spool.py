"""The tracker's disk spool: append-only segment files of length+CRC framed records.

Layout under the spool directory::

    <root>/lane-<uuid7>/LOCK                 flock()ed by the process that owns the lane
    <root>/lane-<uuid7>/000000000001.seg     "EWSPOOL1", then records
    <root>/lane-<uuid7>/000000000002.seg     ...

A record is ``<u32 length><u32 crc32(length bytes + payload)><payload>`` (little
endian), the payload one framed event. Each process writes only to its own lane,
created on its first write; lanes whose lock is free (their process exited,
crashed, or closed its tracker) are adopted by the next tracker that looks, and
replayed oldest first. A record is valid only if it is whole and its CRC
matches: a write torn by a crash or a full disk ends a segment, and whatever
follows it in that file is ignored. A failed append truncates the file back,
so that torn tails never sit between valid records.

Durability: records are written with ``pwrite`` (in the page cache at once, so
they survive the *process* being killed) and made durable against power loss by
:meth:`Spool.sync` (``fdatasync``, plus an ``fsync`` of the directory when files
were created). A segment is deleted once every record in it is acknowledged;
if the process dies before that, the next run resends those records and the
server's dedupe absorbs them (at most one segment's worth).

Thread-safety: one lock guards the metadata; reading runs outside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eventwire._ids import uuid7
from eventwire.client._exceptions import EventwireError
from eventwire.client._pipeline import Runs

__all__ = ["Spool", "SpoolError", "SpoolFullError", "SpoolRead"]

log = logging.getLogger("eventwire.client")

MAGIC: Final = b"EWSPOOL1"
_HEADER: Final = struct.Struct("<II")
MAX_RECORD: Final = 1 << 20
_LANE_PREFIX: Final = "lane-"
_SEG_SUFFIX: Final = ".seg"
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class SpoolError(EventwireError):
    """The spool could not take or give back events; ``__cause__`` is the OSError, if any."""


class SpoolFullError(SpoolError):
    """The spool reached ``max_spool_bytes``, or its filesystem ran out of space."""


@dataclass(frozen=True, slots=True)
class SpoolRead:
    events: list[bytes]
    runs: list[tuple[int, int]]
    segment: _Segment
    lost: list[tuple[int, int]] = field(default_factory=list)
    """Labels of records found damaged behind ``events``: they cannot be sent."""


@dataclass(eq=False, slots=True)
class _Lane:
    path: Path
    lock_fd: int
    own: bool
    segments: int = 0


@dataclass(eq=False, slots=True)
class _Segment:
    path: Path
    fd: int
    lane: _Lane
    size: int
    records: int
    runs: Runs
    sealed: bool
    read_offset: int = len(MAGIC)
    read_records: int = 0
    acked_records: int = 0
    reading: bool = False


def _crc(payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(len(payload).to_bytes(4, "little")))


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), _crc(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(fd: int) -> tuple[int, int]:
    """Valid size and record count of a segment: everything up to the first bad record."""
    head = os.pread(fd, len(MAGIC), 0)
    if head != MAGIC:
        return 0, 0
    offset = len(MAGIC)
    records = 0
    chunk = b""
    chunk_at = offset
    while True:
        pos = offset - chunk_at
        if len(chunk) - pos < _HEADER.size:
            chunk = os.pread(fd, 1 << 20, offset)
            chunk_at = offset
            pos = 0
            if len(chunk) < _HEADER.size:
                return offset, records
        length, crc = _HEADER.unpack_from(chunk, pos)
        if length > MAX_RECORD:
            return offset, records
        end = pos + _HEADER.size + length
        if end > len(chunk):
            chunk = os.pread(fd, _HEADER.size + length, offset)
            chunk_at = offset
            pos = 0
            end = _HEADER.size + length
            if len(chunk) < end:
                return offset, records
        if _crc(chunk[pos + _HEADER.size : end]) != crc:
            return offset, records
        offset += _HEADER.size + length
        records += 1


def _parse(
    fd: int, offset: int, end: int, max_events: int, max_bytes: int
) -> tuple[list[bytes], int, bool]:
    """Whole records from ``offset`` (before ``end``): payloads, bytes consumed, damage found."""
    events: list[bytes] = []
    chunk = os.pread(fd, min(end - offset, max_bytes + _HEADER.size * max_events), offset)
    pos = 0
    total = 0
    while len(events) < max_events and pos < len(chunk):
        if len(chunk) - pos < _HEADER.size:
            return events, pos, not events
        length, crc = _HEADER.unpack_from(chunk, pos)
        if length > MAX_RECORD:
            return events, pos, True
        stop = pos + _HEADER.size + length
        if stop > len(chunk):
            if events:
                break
            # A record bigger than one read: fetch exactly it.
            chunk = os.pread(fd, _HEADER.size + length, offset)
            pos, stop = 0, _HEADER.size + length
            if len(chunk) < stop:
                return events, pos, True
        payload = chunk[pos + _HEADER.size : stop]
        if _crc(payload) != crc:
            return events, pos, True
        if events and total + length > max_bytes:
            break
        events.append(payload)
        total += length
        pos = stop
    return events, pos, False


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The owner may have removed the lane between our open and our lock:
        # a lock on an unlinked file protects nothing.
        current = os.stat(path).st_ino
    except OSError:
        os.close(fd)
        return None
    if os.fstat(fd).st_ino != current:
        os.close(fd)
        return None
    return fd


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
        self._segments: list[_Segment] = []
        """In replay order: adopted lanes' segments (oldest lane first), then ours."""
        self._lanes: dict[Path, _Lane] = {}
        self._own: _Lane | None = None
        self._active: _Segment | None = None
        self._next_segment = 1
        self._bytes = 0
        self._dirty: set[_Segment] = set()
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
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            names = sorted(p for p in os.listdir(self.root) if p.startswith(_LANE_PREFIX))
        except OSError as exc:
            raise SpoolError(f"cannot read spool directory {self.root}: {exc}") from exc
        found = 0
        for name in names:
            path = self.root / name
            with self._lock:
                if self._closed or path in self._lanes:
                    continue
            fd = _try_lock(path / "LOCK")
            if fd is None:
                continue
            lane = _Lane(path, fd, own=False)
            segments = self._load_lane(lane)
            with self._lock:
                if self._closed:
                    os.close(fd)
                    for seg in segments:
                        os.close(seg.fd)
                    return found
                self._lanes[path] = lane
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

    def _load_lane(self, lane: _Lane) -> list[_Segment]:
        segments: list[_Segment] = []
        try:
            names = sorted(p for p in os.listdir(lane.path) if p.endswith(_SEG_SUFFIX))
        except OSError:
            return segments
        for name in names:
            path = lane.path / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                size, records = _scan(fd)
            except OSError:
                size, records = 0, 0
            if not records:
                os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            lane.segments += 1
            segments.append(
                _Segment(path, fd, lane, size, records, Runs([(0, records)]), sealed=True)
            )
        return segments

    # -- writing -----------------------------------------------------------------------

    def append(self, events: Sequence[bytes], runs: Sequence[tuple[int, int]]) -> None:
        """Write ``events`` after everything else, all or nothing (durable after :meth:`sync`)."""
        if not events:
            return
        data = b"".join([_frame(e) for e in events])
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
                if exc.errno in _FULL_ERRNOS:
                    raise SpoolFullError(f"no space left for the spool in {self.root}") from exc
                raise SpoolError(f"cannot write spool segment {seg.path}: {exc}") from exc
            seg.size += len(data)
            seg.records += len(events)
            seg.runs.extend(runs)
            self._bytes += len(data)
            self._dirty.add(seg)

    def _undo(self, seg: _Segment) -> None:
        try:
            os.ftruncate(seg.fd, seg.size)
        except OSError:
            # Cannot cut the torn tail off: write no more after it.
            seg.sealed = True
            if self._active is seg:
                self._active = None

    def _writable(self, size: int) -> _Segment:
        seg = self._active
        if seg is not None and seg.records and seg.size + size > self.segment_bytes:
            seg.sealed = True
            self._active = seg = None
        if seg is not None:
            return seg
        lane = self._own_lane()
        path = lane.path / f"{self._next_segment:012d}{_SEG_SUFFIX}"
        self._next_segment += 1
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise SpoolFullError(f"no space left for the spool in {self.root}") from exc
            raise SpoolError(f"cannot create spool segment {path}: {exc}") from exc
        try:
            os.pwrite(fd, MAGIC, 0)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            if exc.errno in _FULL_ERRNOS:
                raise SpoolFullError(f"no space left for the spool in {self.root}") from exc
            raise SpoolError(f"cannot write spool segment {path}: {exc}") from exc
        seg = _Segment(path, fd, lane, len(MAGIC), 0, Runs(), sealed=False)
        lane.segments += 1
        self._segments.append(seg)
        self._bytes += len(MAGIC)
        self._active = seg
        self._dirs_dirty.add(lane.path)
        return seg

    def _own_lane(self) -> _Lane:
        if self._own is not None:
            return self._own
        path = self.root / f"{_LANE_PREFIX}{uuid7()}"
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise SpoolFullError(f"no space left for the spool in {self.root}") from exc
            raise SpoolError(f"cannot create spool lane {path}: {exc}") from exc
        fd = _try_lock(path / "LOCK")
        if fd is None:
            raise SpoolError(f"cannot lock spool lane {path}")
        self._own = _Lane(path, fd, own=True)
        self._lanes[path] = self._own
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
                    _fsync_dir(path)
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
            events, consumed, damaged = _parse(seg.fd, offset, end, max_events, max_bytes)
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

    def ack(self, segment: _Segment, n: int) -> None:
        """``n`` records read from ``segment`` were acknowledged."""
        with self._lock:
            segment.acked_records += n
            self._maybe_delete(segment)

    def _maybe_delete(self, seg: _Segment) -> None:
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

    def _remove_lane(self, lane: _Lane) -> None:
        # Unlink the lock before releasing it: a process that opened it meanwhile
        # sees a different inode (or none) and leaves the lane alone.
        with contextlib.suppress(OSError):
            (lane.path / "LOCK").unlink()
        with contextlib.suppress(OSError):
            lane.path.rmdir()
        os.close(lane.lock_fd)
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
