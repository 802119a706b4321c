"""SQLite store: embedded, nothing to start, durable.

One writer connection, fed whole group commits by the ingest pipeline, one
transaction at a time. Its rows go in on the event loop: inserting a group
costs microseconds, less than handing it to a thread and back (two GIL
hand-offs and a loop wake-up, which on one core were most of a small commit's
cost). Only what waits on the disk leaves the loop: a ``COMMIT`` that fsyncs
(``synchronous = full`` or ``extra``) runs on the writer thread, so the loop
keeps serving while the disk works; with ``normal`` or ``off`` the ``COMMIT``
writes to the WAL without an fsync and stays on the loop too. A transaction
that would wait for the write lock (``--workers`` processes share the file),
and retention's bulk deletes, run wholly on the writer thread. Reads use a
second connection on another thread; WAL lets them run while a write is in
progress.

Reads in commit order need nothing special here: the one writer commits one
transaction after another, so rowid order is commit order and a row a reader
can see is final. Positions are ``(0, rowid)``.

Durability is the ``synchronous`` pragma, a documented trade-off:

* ``full`` (default): a commit survives power loss and OS crashes; one fsync of
  the WAL per commit, shared by every request in a group commit.
* ``normal``: a commit survives a crash of the process, but the last commits may
  roll back on power loss or an OS crash (WAL is fsynced only at checkpoints).
* ``off``: for benchmarks and throwaway data only.

One server per file: :meth:`SQLiteStore.open` takes an exclusive ``flock`` on
``<file>.lock`` (holding the owner's pid) for the store's life, so a second
server on the same file is refused at start instead of writing beside the
first. ``--workers`` processes share a file on purpose: their supervisor holds
the lock (:class:`DatabaseLock`) and each worker opens with ``exclusive=False``.

Faults while serving. Acknowledged rows live in three files: the database,
its ``-wal`` (every commit since the last checkpoint) and its ``-shm`` (the WAL
index). A file deleted or replaced under the server keeps being written
through the descriptor SQLite holds, and a restart reads the path, not that
descriptor: rows committed then are lost. So after each commit, before it is
acknowledged, the path of each file is ``stat``-ed against the identity the
file had when opened (:class:`StorageFiles`; a descriptor of our own keeps
each inode from being reused meanwhile), and the ``-wal``'s size against the
most it has been (SQLite only ever rewrites it from the start, never shrinks
it: ``journal_size_limit`` is pinned to -1), once more before the commit, so a
truncated WAL is refused before anything is written after the hole. On such
a fault the store saves what it can (a full checkpoint of the WAL it still
holds into the database file; a database file deleted is written back to its
path from the open connection, page for page), acknowledges the commit only
if that worked, and refuses every later write with :class:`StoreGone`.
Before each commit the ``-shm`` file's attributes are read
(``FS_IOC_GETFLAGS``): SQLite keeps the WAL index in that file memory-mapped,
and writing to a mapped page of an immutable file (``chattr +i``) is a SIGBUS
that kills the process, so an immutable file is refused as unavailable before
SQLite touches it, and served again once the attribute is cleared. Five
metadata syscalls per group commit (a few microseconds, against a commit's
fsync of milliseconds), none per request. ``mmap_size`` stays 0 (SQLite's
default, pinned here against builds that change it): memory-mapped reads would
turn every I/O error on the database file into a SIGBUS too, and measured they
buy nothing for this workload (see docs/limits.md).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import sqlite3
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from eventwire.store.base import (
    ORIGIN,
    Aggregate,
    AlertFilter,
    AlertPage,
    AlertRow,
    CommitResult,
    EventAggregation,
    EventPage,
    EventQuery,
    EventRow,
    Kind,
    Position,
    StoredAlert,
    StoredEvent,
    StoreError,
    StoreGone,
    StoreUnavailable,
)
from eventwire.store.migrations import MIGRATIONS

log = logging.getLogger("eventwire.store")

_LEFT_OPEN: list[sqlite3.Connection | None] = []
"""Connections :meth:`SQLiteStore.close` could not close safely (kept from the GC)."""

SYNCHRONOUS_LEVELS: Final = ("off", "normal", "full", "extra")

# <linux/fs.h>: _IOR('f', 1, long); the kernel reads and writes an int through it.
_FS_IOC_GETFLAGS: Final = 0x80086601
_FS_APPEND_FL: Final = 0x20
_FS_IMMUTABLE_FL: Final = 0x10
_FROZEN: Final = _FS_IMMUTABLE_FL | _FS_APPEND_FL

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

_INSERT_EVENT: Final = (
    "INSERT INTO events (tenant, event_id, event_name, user_id, ts, received_at, properties)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_ALERT_COLUMNS: Final = (
    "tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key,"
    " severity, message, attributes"
)
_INSERT_ALERT: Final = (
    f"INSERT INTO alerts ({_ALERT_COLUMNS})"  # noqa: S608 - constant identifiers only
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_ALERT_BY_KEY: Final = "SELECT tracking_id FROM alerts WHERE tenant = ? AND idempotency_key = ?"
_ALERT_BY_ID: Final = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant = ? AND tracking_id = ?"  # noqa: S608
_EVENT_COLUMNS: Final = "tenant, event_id, event_name, user_id, ts, received_at, properties"
_TABLES: Final[dict[Kind, str]] = {"alerts": "alerts", "events": "events"}
_CURSOR_KEY: Final = "cursor_key"
_BUSY_TIMEOUT_MS: Final = 5000
"""How long a transaction waits for another process's write lock."""

T = TypeVar("T")


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
    paths still lead to them (see the module docstring).

    A descriptor of our own on each keeps its inode alive, so an inode number
    seen at a path again is the same file, not a new one that reused it: one
    ``stat`` of the path tells deleted, replaced and (for the WAL) truncated.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.wal = Path(f"{database}-wal")
        self.shm = Path(f"{database}-shm")
        self._fds: dict[Path, int] = {}
        self._identity: dict[Path, tuple[int, int]] = {}
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
            self._identity[path] = (held.st_dev, held.st_ino)
            if path == self.wal:
                self._wal_size = held.st_size

    def fd(self, path: Path) -> int | None:
        return self._fds.get(path)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def changed(self, *paths: Path) -> str:
        """What happened to the first of ``paths`` (all three by default) no longer
        holding what the server wrote; "" if none did."""
        for path in paths or (self.database, self.wal, self.shm):
            identity = self._identity.get(path)
            if identity is None:
                continue
            try:
                now = os.stat(path)
            except FileNotFoundError:
                return f"{path} was deleted while the server was using it"
            if (now.st_dev, now.st_ino) != identity:
                return f"{path} was replaced while the server was using it"
            if path == self.wal:
                if now.st_size < self._wal_size:
                    self.truncated = True
                    return (
                        f"{path} was truncated while the server was using it "
                        f"({now.st_size} bytes, it had held {self._wal_size})"
                    )
                self._wal_size = now.st_size
        return ""

    def database_in_place(self) -> bool:
        return not self.changed(self.database)


class SQLiteStore:
    # A cancelled commit's COMMIT still runs to its end on the writer thread,
    # and the next transaction waits for it (see _transaction).
    cancel_safe_commit = True

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
        # whether they became immutable (see above).
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
        self._cursor_key = b""
        self._writing = asyncio.Lock()
        """Held for each transaction on the writer connection, wherever it runs."""
        self._fsync_at_commit = synchronous in ("full", "extra")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

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
        if writer is not None and _frozen(self._files.fd(self._files.shm), ""):
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

    # -- writes --------------------------------------------------------------------

    async def commit(
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        result = await self._transaction(self._fill, events, alerts)
        # The single writer is the only source of new rows: waking readers
        # right here is as early as they can see them.
        if alerts:
            self._publish("alerts")
        if any(events):
            self._publish("events")
        return result

    def subscribe(self, callback: Callable[[Kind, int], None]) -> None:
        self._subscribers.append(callback)

    def _publish(self, kind: Kind) -> None:
        for callback in self._subscribers:
            callback(kind, 0)

    @staticmethod
    def _fill(
        conn: sqlite3.Connection, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        inserted = [conn.executemany(_INSERT_EVENT, group).rowcount for group in events]
        tracking_ids: list[str] = []
        for alert in alerts:
            if conn.execute(_INSERT_ALERT, alert).rowcount == 1:
                tracking_ids.append(alert.tracking_id)
            else:
                row = conn.execute(_ALERT_BY_KEY, (alert.tenant, alert.idempotency_key))
                tracking_ids.append(row.fetchone()[0])
        return CommitResult(inserted, tracking_ids)

    async def _transaction(self, fill: Callable[..., T], *args: Any, on_thread: bool = False) -> T:
        """``fill(conn, *args)`` in one write transaction, committed (see the module
        docstring for what runs where); the file's identity is checked after it."""
        await self._writing.acquire()
        handed_over = False  # to the writer thread, which releases the lock then
        try:
            try:
                conn = self._require(self._writer)
                self._refuse_if_faulted()
                self._check_wal_index()
                # The WAL alone before: a commit after a hole would be written
                # past it; every file after (see _finish).
                if fault := self._files.changed(self._files.wal):
                    await self._on(self._write_thread, self._lose, conn, fault)
                    raise StoreGone(self._gone)
                if on_thread or not _try_begin(conn):
                    pending = self._thread_future(self._blocking, fill, *args)
                else:
                    try:
                        result = fill(conn, *args)
                        if not self._fsync_at_commit:
                            conn.execute("COMMIT")
                    except BaseException:
                        _rollback(conn)
                        raise
                    if not self._fsync_at_commit:
                        if not (fault := self._files.changed()):
                            return result
                        pending = self._thread_future(self._settle, conn, fault, result)
                    else:
                        pending = self._thread_future(self._finish, conn, result)
                try:
                    return await asyncio.shield(pending)
                except asyncio.CancelledError:
                    # The thread still owns the connection: the next transaction
                    # waits until it is done, committed or rolled back.
                    handed_over = True
                    pending.add_done_callback(lambda _: self._writing.release())
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise _store_error(exc) from exc
        finally:
            if not handed_over:
                self._writing.release()

    def _thread_future(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        try:
            return asyncio.get_running_loop().run_in_executor(self._write_thread, fn, *args)
        except RuntimeError as exc:  # executor shut down
            raise StoreUnavailable("store is closed") from exc

    def _finish(self, conn: sqlite3.Connection, result: T) -> T:
        """On the writer thread: the COMMIT that fsyncs."""
        try:
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        # Committed, but into the files a restart reads? Only then acknowledged.
        if fault := self._files.changed():
            return self._settle(conn, fault, result)
        return result

    def _settle(self, conn: sqlite3.Connection, fault: str, result: T) -> T:
        """On the writer thread: a commit that went into a file no longer at its
        path is acknowledged only if it could be saved into one that is."""
        if not self._lose(conn, fault):
            raise StoreGone(self._gone)
        return result

    def _blocking(self, fill: Callable[..., T], *args: Any) -> T:
        """On the writer thread: a whole transaction, waiting for the write lock."""
        conn = self._require(self._writer)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            result = fill(conn, *args)
        except BaseException:
            _rollback(conn)
            raise
        return self._finish(conn, result)

    # -- reads ---------------------------------------------------------------------

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        return await self._on(self._read_thread, self._get_alert, tenant, tracking_id)

    def _get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        self._refuse_if_faulted()
        row = self._require(self._reader).execute(_ALERT_BY_ID, (tenant, tracking_id)).fetchone()
        return None if row is None else AlertRow(*row)

    async def count_events(self, tenant: str, query: EventQuery) -> int:
        return await self._on(self._read_thread, self._count_events, tenant, query)

    def _count_events(self, tenant: str, query: EventQuery) -> int:
        self._refuse_if_faulted()
        sql = ["SELECT count(*) FROM events WHERE tenant = ?"]
        params: list[str | int] = [tenant]
        if query.event_name:
            sql.append("AND event_name = ?")
            params.append(query.event_name)
        if query.user_id:
            sql.append("AND user_id = ?")
            params.append(query.user_id)
        if query.start:
            sql.append("AND ts >= ?")
            params.append(query.start)
        if query.end:
            sql.append("AND ts < ?")
            params.append(query.end)
        count: int = self._require(self._reader).execute(" ".join(sql), params).fetchone()[0]
        return count

    # -- reads in commit order ------------------------------------------------------

    async def read_alerts(self, after: Position, where: AlertFilter, limit: int) -> AlertPage:
        return await self._on(self._read_thread, self._read_alerts, after, where, limit)

    def _read_alerts(self, after: Position, where: AlertFilter, limit: int) -> AlertPage:
        sql = [f"SELECT seq, {_ALERT_COLUMNS} FROM alerts WHERE seq > ?"]  # noqa: S608
        params: list[str | int] = [after.seq]
        if where.tenant is not None:
            sql.append("AND tenant = ?")
            params.append(where.tenant)
        for column, value in (("device_id", where.device_id), ("alert_type", where.alert_type)):
            if value:
                sql.append(f"AND {column} = ?")
                params.append(value)
        if where.min_severity:
            sql.append("AND severity >= ?")
            params.append(where.min_severity)
        _time_range(sql, params, where.start, where.end)
        sql.append("ORDER BY seq LIMIT ?")
        params.append(limit)
        rows, last = self._page(" ".join(sql), params, "alerts")
        page = [StoredAlert(Position(0, r[0]), AlertRow(*r[1:])) for r in rows]
        return AlertPage(page, _through(after, page, limit, last))

    async def read_events(
        self, after: Position, tenant: str, query: EventQuery, limit: int
    ) -> EventPage:
        return await self._on(self._read_thread, self._read_events, after, tenant, query, limit)

    def _read_events(
        self, after: Position, tenant: str, query: EventQuery, limit: int
    ) -> EventPage:
        # NOT INDEXED: walk the rowid in order. With an event_name the planner
        # would rather take events_by_name_ts and sort, which re-reads
        # everything after the cursor for every page.
        sql = [
            f"SELECT seq, {_EVENT_COLUMNS} FROM events NOT INDEXED"  # noqa: S608
            " WHERE seq > ? AND tenant = ?"
        ]
        params: list[str | int] = [after.seq, tenant]
        if query.event_name:
            sql.append("AND event_name = ?")
            params.append(query.event_name)
        _time_range(sql, params, query.start, query.end)
        sql.append("ORDER BY seq LIMIT ?")
        params.append(limit)
        rows, last = self._page(" ".join(sql), params, "events")
        page = [StoredEvent(Position(0, r[0]), EventRow(*r[1:])) for r in rows]
        return EventPage(page, _through(after, page, limit, last))

    def _page(
        self, query: str, params: list[str | int], table: str
    ) -> tuple[list[tuple[Any, ...]], int]:
        """The rows of ``query`` and the table's last rowid, from one snapshot."""
        conn = self._require(self._reader)
        conn.execute("BEGIN")
        try:
            rows = conn.execute(query, params).fetchall()
            last = conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0]  # noqa: S608
        finally:
            conn.execute("COMMIT")
        return rows, last or 0

    async def head(self, kind: Kind) -> Position:
        return await self._on(self._read_thread, self._head, kind)

    async def tail(self, kind: Kind) -> Position:
        # Every committed row is final here.
        return await self.head(kind)

    def _head(self, kind: Kind) -> Position:
        table = _TABLES[kind]
        last = self._require(self._reader).execute(f"SELECT max(seq) FROM {table}").fetchone()[0]  # noqa: S608
        return Position(0, last or 0)

    async def aggregate_events(self, tenant: str, query: EventAggregation) -> list[Aggregate]:
        return await self._on(self._read_thread, self._aggregate, tenant, query)

    def _aggregate(self, tenant: str, query: EventAggregation) -> list[Aggregate]:
        if query.group_by == "event_name" or (not query.group_by and query.event_name):
            return self._aggregate_by_name(tenant, query)
        params: list[str | int] = []
        bucket = _bucket(query, params)
        if query.group_by == "user_id":
            group = "user_id"
        elif query.group_by.startswith("properties."):
            # json_each compares keys as they are; a JSON path would need the
            # key quoted, and SQLite's path syntax cannot quote every key.
            group = "coalesce((SELECT value FROM json_each(properties) WHERE key = ?), '')"
            params.append(query.group_by.removeprefix("properties."))
        else:
            group = "''"
        sql = [
            f"SELECT {bucket} AS b, {group} AS g, count(*) AS n,"  # noqa: S608 - fixed fragments
            " count(DISTINCT nullif(user_id, '')) FROM events WHERE tenant = ?"
        ]
        params.append(tenant)
        if query.event_name:
            sql.append("AND event_name = ?")
            params.append(query.event_name)
        _time_range(sql, params, query.start, query.end)
        sql.append("GROUP BY b, g ORDER BY b, n DESC, g LIMIT ?")
        params.append(query.limit)
        rows = self._require(self._reader).execute(" ".join(sql), params).fetchall()
        return [Aggregate(int(b), str(g), int(n), int(u)) for b, g, n, u in rows]

    def _aggregate_by_name(self, tenant: str, query: EventAggregation) -> list[Aggregate]:
        """One event name at a time, each a range of the covering index.

        SQLite has no hash aggregate: grouping a million rows by (bucket,
        name) sorts all of them (1.4 s for 1 M on the reference machine).
        Per name, the index already holds the rows in time order with their
        user ids, and each sort is a name's share (0.7 s in all).
        """
        conn = self._require(self._reader)
        names = [query.event_name] if query.event_name else _event_names(conn, tenant)
        out: list[Aggregate] = []
        for name in names:
            params: list[str | int] = []
            bucket = _bucket(query, params)
            sql = [
                f"SELECT {bucket} AS b, count(*), count(DISTINCT nullif(user_id, ''))"  # noqa: S608 - fixed fragments
                " FROM events INDEXED BY events_by_name_ts_user WHERE tenant = ? AND event_name = ?"
            ]
            params += [tenant, name]
            _time_range(sql, params, query.start, query.end)
            sql.append("GROUP BY b")
            group = name if query.group_by else ""
            out.extend(
                Aggregate(int(b), group, int(n), int(u))
                for b, n, u in conn.execute(" ".join(sql), params)
            )
        out.sort(key=lambda a: (a.bucket_start, -a.count, a.group))
        return out[: query.limit]

    # -- retention ------------------------------------------------------------------

    async def purge(self, kind: Kind, received_before: int, limit: int) -> int:
        # A bulk delete: on the writer thread, so that ingest keeps the loop.
        return await self._transaction(self._purge, kind, received_before, limit, on_thread=True)

    @staticmethod
    def _purge(conn: sqlite3.Connection, kind: Kind, received_before: int, limit: int) -> int:
        table = _TABLES[kind]
        oldest = conn.execute(
            f"SELECT seq, received_at FROM {table} ORDER BY seq LIMIT ?",  # noqa: S608
            (limit,),
        ).fetchall()
        newest = conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0]  # noqa: S608
        end = 0
        for seq, received_at in oldest:
            # Events spare their newest row: SQLite would hand out rowids
            # again from 1 once the table is empty (alerts use AUTOINCREMENT).
            if received_at >= received_before or (kind == "events" and seq == newest):
                break
            end = seq
        if not end:
            return 0
        deleted = conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (end,)).rowcount  # noqa: S608
        conn.execute(
            "INSERT INTO eventwire_retention (kind, xid, seq) VALUES (?, 0, ?)"
            " ON CONFLICT (kind) DO UPDATE SET seq = excluded.seq",
            (kind, end),
        )
        return int(deleted)

    async def retained_after(self, kind: Kind) -> Position:
        return await self._on(self._read_thread, self._retained_after, kind)

    def _retained_after(self, kind: Kind) -> Position:
        row = (
            self._require(self._reader)
            .execute("SELECT xid, seq FROM eventwire_retention WHERE kind = ?", (kind,))
            .fetchone()
        )
        return ORIGIN if row is None else Position(*row)

    async def cursor_key(self) -> bytes:
        if not self._cursor_key:
            raise StoreUnavailable("store is not open")
        return self._cursor_key

    async def check(self) -> None:
        await self.verify()
        # A write probe: a read would succeed on a full disk or a read-only file.
        await self._transaction(_probe)

    async def verify(self) -> None:
        fault = await self._on(self._write_thread, self._verify)
        if not fault:
            return
        # Refused from now on; the connection is ours once no transaction holds it.
        self._gone = fault
        async with self._writing:
            conn = self._require(self._writer)
            await self._on(self._write_thread, self._lose, conn, fault)
        raise StoreGone(self._gone)

    def _verify(self) -> str:
        """What happened to a file (see :meth:`StorageFiles.changed`), or "" once
        the attributes are checked too."""
        self._require(self._writer)
        if self._gone:
            raise StoreGone(self._gone)
        if fault := self._files.changed():
            return fault
        self._check_attributes()
        return ""

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
        _write_back(conn, self.path)
        return f"{self.path} was written back from the open database; restart the server"

    def _check_wal_index(self) -> None:
        """Refuse to write while the memory-mapped WAL index cannot be (see above)."""
        self._frozen = _frozen(self._files.fd(self._files.shm), f"{self.path}-shm")
        if self._frozen:
            raise StoreUnavailable(self._frozen)

    def _check_attributes(self) -> None:
        self._frozen = _frozen(self._files.fd(self._files.shm), f"{self.path}-shm") or _frozen(
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


def _write_back(conn: sqlite3.Connection, path: Path) -> None:
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


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA user_version = " + str(MIGRATIONS[-1].version))


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


def _frozen(fd: int | None, name: str) -> str:
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


def _open_message(path: Path, exc: StoreError) -> str:
    text = str(exc).removeprefix("sqlite: ")
    hint = next((h for key, h in _OPEN_HINTS if key in text.lower()), "")
    return f"cannot open {path}: {text}" + (f"; {hint}" if hint else "")


# A loose index scan: one index seek per distinct name, not a pass over the rows.
_EVENT_NAMES: Final = """
    WITH RECURSIVE names (name) AS (
        SELECT min(event_name) FROM events WHERE tenant = ?1
        UNION ALL
        SELECT (SELECT min(event_name) FROM events WHERE tenant = ?1 AND event_name > name)
        FROM names WHERE name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
"""


def _event_names(conn: sqlite3.Connection, tenant: str) -> list[str]:
    return [name for (name,) in conn.execute(_EVENT_NAMES, (tenant,))]


def _bucket(query: EventAggregation, params: list[str | int]) -> str:
    if not query.bucket_ms:
        return "0"
    params += [query.bucket_ms, query.bucket_ms]
    return "(ts / ?) * ?"


def _time_range(sql: list[str], params: list[str | int], start: int, end: int) -> None:
    if start:
        sql.append("AND ts >= ?")
        params.append(start)
    if end:
        sql.append("AND ts < ?")
        params.append(end)


def _through(
    after: Position, page: Sequence[tuple[Position, object]], limit: int, last: int
) -> Position:
    """How far a page read from ``after`` settles: its last row when it is full,
    else everything the snapshot held."""
    if len(page) >= limit:
        return page[-1][0]
    return max(after, Position(0, last))
