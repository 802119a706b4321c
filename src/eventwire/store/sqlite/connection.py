"""The connections of an SQLite store, their threads, and the faults of its files."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from eventwire.store.base import Kind, StoreError, StoreGone, StoreUnavailable
from eventwire.store.migrations import MIGRATIONS
from eventwire.store.sqlite.files import DatabaseLock, StorageFiles, frozen, write_back

log = logging.getLogger("eventwire.store")

_LEFT_OPEN: list[sqlite3.Connection | None] = []
"""Connections :meth:`SQLiteStore.close` could not close safely (kept from the GC)."""

SYNCHRONOUS_LEVELS: Final = ("off", "normal", "full", "extra")


# What to do about the errors sqlite3 reports when a file cannot be opened.
_OPEN_HINTS: Final = (
    (
        "file is not a database",
        "it is not an SQLite database: point --store at an eventwire "
        "database, or at a path where a new one may be created",
    ),
    ("unable to open", "check that its directory exists and is writable"),
    ("readonly", "the file or its directory is read-only: make them writable"),
    ("locked", "another program holds a lock on it: stop that program"),
)


_CURSOR_KEY: Final = "cursor_key"
_BUSY_TIMEOUT_MS: Final = 5000
"""How long a transaction waits for another process's write lock."""

T = TypeVar("T")


class SQLiteConnection:
    """The writer and reader connections, their threads, and the faults of the files
    under them: what the reads and the writes of :class:`SQLiteStore` share."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "full", exclusive: bool = True
    ) -> None:
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"synchronous must be one of {SYNCHRONOUS_LEVELS}, not {synchronous!r}"
            )
        self.path = Path(path)
        self.synchronous = synchronous
        self._lock = DatabaseLock(self.path) if exclusive else None
        # The files as opened, to tell whether the paths still lead to them and
        # whether they became immutable (see the package docstring).
        self._files = StorageFiles(self.path)
        self._gone = ""
        """Why the file is no longer ours; set once, never cleared."""
        self._frozen = ""
        """Why the files cannot be written now (immutable); cleared when they can."""
        self.must_exit_at_once = False
        """Closed while its WAL index was immutable: the process must end with
        ``os._exit``, since finalizing the connections left open would SIGBUS."""
        # One thread per connection: sqlite3 connections are not shared across threads.
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="eventwire-sqlite-writer")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="eventwire-sqlite-reader")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._subscribers: list[Callable[[Kind, int], None]] = []
        self._plan_watchers: list[Callable[[], None]] = []
        self._cursor_key = b""
        self._writing = asyncio.Lock()
        """Held for each transaction on the writer connection, wherever it runs."""
        self._fsync_at_commit = synchronous in ("full", "extra")

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._prepare()
            self._writer = await self._on(self._write_thread, self._open_writer)
            self._reader = await self._on(self._read_thread, self._open_reader)
        except StoreError as exc:
            await self.close()
            if str(exc).startswith(str(self.path)):
                raise
            raise type(exc)(_open_message(self.path, exc)) from None

    def _prepare(self) -> None:
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; --store needs a file's path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {self.path.parent}: {exc.strerror}"
            ) from None
        if self._lock is not None:
            self._lock.acquire()

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None and frozen(self._files.fd(self._files.shm), ""):
            # The last connection to close checkpoints, which writes the mapped
            # WAL index: a SIGBUS while it is immutable. Every commit is in the
            # WAL already (SQLite replays it at the next open), so the
            # connections stay open and the process must end without
            # finalizing them (see must_exit_at_once).
            log.error(
                "%s-shm is still immutable: leaving the database unclosed; its WAL holds "
                "every commit and is replayed at the next start",
                self.path,
            )
            self.must_exit_at_once = True
            _LEFT_OPEN.extend((writer, reader))
            writer = reader = None
        if writer is not None:
            await self._on(self._write_thread, writer.close)
        if reader is not None:
            await self._on(self._read_thread, reader.close)
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self._files.close()
        if self._lock is not None:
            self._lock.release()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and committed explicitly.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            self._use_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA mmap_size = 0")
            # A WAL that shrinks is a WAL someone truncated (see StorageFiles).
            conn.execute("PRAGMA journal_size_limit = -1")
            self._migrate(conn)
            conn.execute(
                "INSERT OR IGNORE INTO eventwire_meta (key, value) VALUES (?, ?)",
                (_CURSOR_KEY, secrets.token_bytes(32)),
            )
            self._cursor_key = conn.execute(
                "SELECT value FROM eventwire_meta WHERE key = ?", (_CURSOR_KEY,)
            ).fetchone()[0]
            # Transactions begin on the event loop, which must never sleep in
            # SQLite's busy handler: a busy BEGIN is retried on the writer thread.
            conn.execute("PRAGMA busy_timeout = 0")
            # The WAL and its index exist once a WAL database has been read.
            self._files.open()
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")

    def _open_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = 1")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        newest = MIGRATIONS[-1].version
        if current > newest:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this eventwire's "
                f"({newest}): a newer eventwire wrote it; run that version, or point "
                "--store at another file"
            )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            # executescript() runs its own transaction; the version bump is part of it.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sqlite}\n"
                f"PRAGMA user_version = {migration.version};\nCOMMIT;"
            )

    # -- faults --------------------------------------------------------------------

    def _refuse_if_faulted(self) -> None:
        if self._gone:
            raise StoreGone(self._gone)
        if self._frozen:
            raise StoreUnavailable(self._frozen)

    def _lose(self, conn: sqlite3.Connection, fault: str) -> bool:
        """On the writer thread, the connection idle: a file no longer at its path.
        Every later write is refused; True if every commit could be saved into
        the files a restart reads."""
        self._gone = fault
        failed = ""
        try:
            saved = self._rescue(conn)
        except (sqlite3.Error, OSError) as exc:
            saved, failed = "", f" (saving it failed: {exc})"
        self._gone = f"{fault}; " + (
            saved
            or f"what it committed since is not in the file at that path{failed}. "
            "Restore the file or restart the server"
        )
        return bool(saved)

    def _rescue(self, conn: sqlite3.Connection) -> str:
        """Put every commit into a database file at the path, from the files SQLite
        still holds open; what was done, or "" if it could not be."""
        if self._files.truncated:
            # Its index points past the end: a checkpoint would stop halfway,
            # leaving the database file with some pages newer than others.
            return ""
        if self._files.database_in_place():
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            try:
                # Every frame of the WAL it holds, into the database file at the path.
                busy = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0]
            finally:
                conn.execute("PRAGMA busy_timeout = 0")
            if busy:
                return ""
            return f"every commit was saved into {self.path}; restart the server"
        if self.path.exists():
            return ""  # another file took its place: the operator's, left alone
        write_back(conn, self.path)
        return f"{self.path} was written back from the open database; restart the server"

    def _check_wal_index(self) -> None:
        """Refuse to write while the memory-mapped WAL index cannot be (SIGBUS)."""
        self._frozen = frozen(self._files.fd(self._files.shm), f"{self.path}-shm")
        if self._frozen:
            raise StoreUnavailable(self._frozen)

    def _check_attributes(self) -> None:
        self._frozen = frozen(self._files.fd(self._files.shm), f"{self.path}-shm") or frozen(
            self._files.fd(self.path), str(self.path)
        )
        if self._frozen:
            raise StoreUnavailable(self._frozen)

    # -- plumbing ------------------------------------------------------------------

    @staticmethod
    def _require(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise StoreUnavailable("store is closed")
        return conn

    async def _on(self, thread: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise _store_error(exc) from exc
        except RuntimeError as exc:  # executor shut down
            raise StoreUnavailable("store is closed") from exc


def _store_error(exc: sqlite3.Error | OSError) -> StoreError:
    """sqlite3's and the OS's errors as the store's."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        # Disk full, I/O errors, locked or unopenable files (or our own metadata
        # syscalls failing): the database may serve again later, so callers see
        # "unavailable", not a bug.
        return StoreUnavailable(f"sqlite: {exc}")
    return StoreError(f"sqlite: {exc}")


def _try_begin(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` if the write lock is free now; False if another holds it."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return False
        raise
    return True


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _open_message(path: Path, exc: StoreError) -> str:
    text = str(exc).removeprefix("sqlite: ")
    hint = next((h for key, h in _OPEN_HINTS if key in text.lower()), "")
    return f"cannot open {path}: {text}" + (f"; {hint}" if hint else "")
