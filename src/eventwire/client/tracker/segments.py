"""The spool's files: lanes (one directory per process, flock()ed) and their segment files.

Layout under the spool directory::

    <root>/lane-<uuid7>/LOCK                 flock()ed by the process that owns the lane
    <root>/lane-<uuid7>/000000000001.seg     "EWSPOOL1", then records
    <root>/lane-<uuid7>/000000000002.seg     ...

Each function here does the file work for one step of :class:`~.spool.Spool`
and turns an ``OSError`` into :class:`SpoolFullError` (no space, quota, file
too big) or :class:`SpoolError`, naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from eventwire._ids import uuid7
from eventwire.client._exceptions import SpoolError, SpoolFullError
from eventwire.client.tracker.epochs import Runs
from eventwire.client.tracker.records import MAGIC, scan

__all__ = [
    "LANE_PREFIX",
    "Lane",
    "Segment",
    "free_lanes",
    "fsync_dir",
    "load_lane",
    "new_lane",
    "new_segment",
    "release",
    "remove_lane",
    "try_lock",
]

LANE_PREFIX: Final = "lane-"
SEG_SUFFIX: Final = ".seg"
FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(eq=False, slots=True)
class Lane:
    path: Path
    lock_fd: int
    own: bool
    segments: int = 0


@dataclass(eq=False, slots=True)
class Segment:
    path: Path
    fd: int
    lane: Lane
    size: int
    records: int
    runs: Runs
    sealed: bool
    read_offset: int = len(MAGIC)
    read_records: int = 0
    acked_records: int = 0
    reading: bool = False


def failed(exc: OSError, root: Path, what: str) -> NoReturn:
    """Raise the spool error ``exc`` means: full, or anything else."""
    if exc.errno in FULL_ERRNOS:
        raise SpoolFullError(f"no space left for the spool in {root}") from exc
    raise SpoolError(f"{what}: {exc}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
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


def new_lane(root: Path) -> Lane:
    """A lane of this process's own, created and locked."""
    path = root / f"{LANE_PREFIX}{uuid7()}"
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        failed(exc, root, f"cannot create spool lane {path}")
    fd = try_lock(path / "LOCK")
    if fd is None:
        raise SpoolError(f"cannot lock spool lane {path}")
    return Lane(path, fd, own=True)


def new_segment(root: Path, lane: Lane, number: int) -> Segment:
    """An empty segment file, open for appending, at the end of ``lane``."""
    path = lane.path / f"{number:012d}{SEG_SUFFIX}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        failed(exc, root, f"cannot create spool segment {path}")
    try:
        os.pwrite(fd, MAGIC, 0)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        failed(exc, root, f"cannot write spool segment {path}")
    lane.segments += 1
    return Segment(path, fd, lane, len(MAGIC), 0, Runs(), sealed=False)


def load_lane(lane: Lane) -> list[Segment]:
    """The valid segments of an adopted lane, oldest first; empty files are deleted."""
    segments: list[Segment] = []
    try:
        names = sorted(p for p in os.listdir(lane.path) if p.endswith(SEG_SUFFIX))
    except OSError:
        return segments
    for name in names:
        path = lane.path / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            size, records = scan(fd)
        except OSError:
            size, records = 0, 0
        if not records:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        lane.segments += 1
        segments.append(Segment(path, fd, lane, size, records, Runs([(0, records)]), sealed=True))
    return segments


def free_lanes(root: Path, skip: Callable[[Path], bool]) -> Iterator[tuple[Lane, list[Segment]]]:
    """Lanes under ``root`` that no live process holds (locked for us now), with their
    segments; ``skip`` tells the lanes already ours."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        names = sorted(p for p in os.listdir(root) if p.startswith(LANE_PREFIX))
    except OSError as exc:
        raise SpoolError(f"cannot read spool directory {root}: {exc}") from exc
    for name in names:
        path = root / name
        if skip(path):
            continue
        fd = try_lock(path / "LOCK")
        if fd is not None:
            lane = Lane(path, fd, own=False)
            yield lane, load_lane(lane)


def release(lane: Lane, segments: list[Segment]) -> None:
    """Close an adopted lane's files unused: it stays for the next process to adopt."""
    os.close(lane.lock_fd)
    for seg in segments:
        os.close(seg.fd)


def remove_lane(lane: Lane) -> None:
    """Delete an emptied lane and release its lock."""
    # Unlink the lock before releasing it: a process that opened it meanwhile
    # sees a different inode (or none) and leaves the lane alone.
    with contextlib.suppress(OSError):
        (lane.path / "LOCK").unlink()
    with contextlib.suppress(OSError):
        lane.path.rmdir()
    os.close(lane.lock_fd)
