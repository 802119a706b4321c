"""The files of an SQLite store on disk: the lock that makes a server the file's
only writer, the identity of the files that hold acknowledged rows, and their
attributes (see :mod:`eventwire.store.sqlite`)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
from pathlib import Path
from typing import Final

from eventwire.store.base import StoreError

# <linux/fs.h>: _IOR('f', 1, long); the kernel reads and writes an int through it.
_FS_IOC_GETFLAGS: Final = 0x80086601
_FS_APPEND_FL: Final = 0x20
_FS_IMMUTABLE_FL: Final = 0x10
_FROZEN: Final = _FS_IMMUTABLE_FL | _FS_APPEND_FL


class DatabaseLock:
    """An exclusive ``flock`` on ``<database>.lock``: one eventwire server per file.

    The file holds the owner's pid, for the refusal message of the next one.
    It is never deleted (deleting a lock file races with the next locker); the
    kernel releases the lock when the owner exits, however it exits.
    """

    def __init__(self, database: str | Path) -> None:
        self.database = Path(database)
        self.path = self.database.with_name(self.database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`StoreError` naming the holder if another process has it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot create the lock file {self.path}: {exc.strerror}; "
                "its directory must exist and be writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"{self.database} is in use by another eventwire server (pid {holder}, "
                f"holding {self.path.name}); stop it, or give this server another --store"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


class StorageFiles:
    """The database, ``-wal`` and ``-shm`` files as opened, to tell whether their
    paths still lead to them (see the package docstring).

    A descriptor of our own on each keeps its inode alive, so an inode number
    seen at a path again is the same file, not a new one that reused it: one
    ``stat`` of the path tells deleted, replaced and (for the WAL) truncated.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.wal = Path(f"{database}-wal")
        self.shm = Path(f"{database}-shm")
        self._fds: dict[Path, int] = {}
        # (path, st_dev, st_ino) of the database, the WAL and the index, in that
        # order: plain strings and ints, checked on every commit.
        self._held: list[tuple[str, int, int]] = []
        self._wal_path = str(self.wal)
        self._wal_size = 0
        """The most the WAL has held: SQLite never shrinks it while it is open."""
        self.truncated = False
        """The WAL lost frames: nothing can be saved from it."""

    def open(self) -> None:
        """Once SQLite has all three open (a WAL database read and written once)."""
        for path in (self.database, self.wal, self.shm):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self._fds[path] = fd
            held = os.fstat(fd)
            self._held.append((str(path), held.st_dev, held.st_ino))
        self._wal_path = self._held[1][0]  # the very object _check is given
        self._wal_size = os.fstat(self._fds[self.wal]).st_size

    def fd(self, path: Path) -> int | None:
        return self._fds.get(path)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._held.clear()

    def changed(self) -> str:
        """What happened to the first of the three files no longer holding what
        the server wrote; "" if none did."""
        for path, dev, ino in self._held:
            if fault := self._check(path, dev, ino):
                return fault
        return ""

    def wal_changed(self) -> str:
        """As :meth:`changed`, for the WAL alone."""
        return self._check(*self._held[1]) if self._held else ""

    def database_in_place(self) -> bool:
        return not self._held or not self._check(*self._held[0])

    def _check(self, path: str, dev: int, ino: int) -> str:
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return f"{path} was deleted while the server was using it"
        if now.st_ino != ino or now.st_dev != dev:
            return f"{path} was replaced while the server was using it"
        if path is self._wal_path:
            if now.st_size < self._wal_size:
                self.truncated = True
                return (
                    f"{path} was truncated while the server was using it "
                    f"({now.st_size} bytes, it had held {self._wal_size})"
                )
            self._wal_size = now.st_size
        return ""


def write_back(conn: sqlite3.Connection, path: Path) -> None:
    """A copy of the database open as ``conn``, page for page, at ``path`` (absent)."""
    spare = path.with_name(f".{path.name}.saved-{os.getpid()}")
    copy = sqlite3.connect(spare)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    fd = os.open(spare, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(spare, path)  # never over a file that appeared meanwhile
    finally:
        spare.unlink()
    fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def frozen(fd: int | None, name: str) -> str:
    """Why the file open as ``fd`` cannot be written (immutable, append-only), or ""."""
    if fd is None:
        return ""
    try:
        flags = struct.unpack_from("=i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8)))[0]
    except OSError:  # a filesystem without attributes (tmpfs before 6.0...): none to check
        return ""
    if not flags & _FROZEN:
        return ""
    kind = "immutable" if flags & _FS_IMMUTABLE_FL else "append-only"
    return f"{name} is {kind} (chattr +i/+a): writes are refused until 'chattr -i -a {name}'"
