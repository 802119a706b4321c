"""SQLite store: embedded, nothing to start, durable.

One writer connection lives on its own thread and is fed whole group commits by
the ingest pipeline, so the event loop keeps decoding requests while SQLite
writes and fsyncs. Reads use a second connection on another thread; WAL lets
them run while a write is in progress.

Durability is the ``synchronous`` pragma, a documented trade-off:

* ``full`` (default): a commit survives power loss and OS crashes; one fsync of
  the WAL per commit, shared by every request in a group commit.
* ``normal``: a commit survives a crash of the process, but the last commits may
  roll back on power loss or an OS crash (WAL is fsynced only at checkpoints).
* ``off``: for benchmarks and throwaway data only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from eventwire.store.base import (
    AlertRow,
    CommitResult,
    EventQuery,
    EventRow,
    StoreError,
    StoreUnavailable,
)
from eventwire.store.migrations import MIGRATIONS

SYNCHRONOUS_LEVELS: Final = ("off", "normal", "full", "extra")

_INSERT_EVENT: Final = (
    "INSERT INTO events (tenant, event_id, event_name, user_id, ts, received_at, properties)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_INSERT_ALERT: Final = (
    "INSERT INTO alerts (tracking_id, tenant, device_id, alert_type, ts, received_at,"
    " idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_ALERT_BY_KEY: Final = "SELECT tracking_id FROM alerts WHERE tenant = ? AND idempotency_key = ?"
_ALERT_BY_ID: Final = (
    "SELECT tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key"
    " FROM alerts WHERE tenant = ? AND tracking_id = ?"
)

T = TypeVar("T")


class SQLiteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "full") -> None:
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"synchronous must be one of {SYNCHRONOUS_LEVELS}, not {synchronous!r}"
            )
        self.path = Path(path)
        self.synchronous = synchronous
        # One thread per connection: sqlite3 connections are not shared across threads.
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="eventwire-sqlite-writer")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="eventwire-sqlite-reader")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        self._writer = await self._on(self._write_thread, self._open_writer)
        self._reader = await self._on(self._read_thread, self._open_reader)

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None:
            await self._on(self._write_thread, writer.close)
        if reader is not None:
            await self._on(self._read_thread, reader.close)
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and committed explicitly.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            conn.close()
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._migrate(conn)
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = 1")
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
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
        return await self._on(self._write_thread, self._commit, events, alerts)

    def _commit(
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        conn = self._require(self._writer)
        inserted: list[int] = []
        tracking_ids: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted.extend(conn.executemany(_INSERT_EVENT, group).rowcount for group in events)
            for alert in alerts:
                if conn.execute(_INSERT_ALERT, alert).rowcount == 1:
                    tracking_ids.append(alert.tracking_id)
                else:
                    row = conn.execute(_ALERT_BY_KEY, (alert.tenant, alert.idempotency_key))
                    tracking_ids.append(row.fetchone()[0])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return CommitResult(inserted, tracking_ids)

    # -- reads ---------------------------------------------------------------------

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        return await self._on(self._read_thread, self._get_alert, tenant, tracking_id)

    def _get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        row = self._require(self._reader).execute(_ALERT_BY_ID, (tenant, tracking_id)).fetchone()
        return None if row is None else AlertRow(*row)

    async def count_events(self, tenant: str, query: EventQuery) -> int:
        return await self._on(self._read_thread, self._count_events, tenant, query)

    def _count_events(self, tenant: str, query: EventQuery) -> int:
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

    async def check(self) -> None:
        await self._on(self._write_thread, self._check)

    def _check(self) -> None:
        conn = self._require(self._writer)
        # A write probe: a read would succeed on a full disk or a read-only file.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("PRAGMA user_version = " + str(MIGRATIONS[-1].version))
        conn.execute("COMMIT")

    # -- plumbing ------------------------------------------------------------------

    @staticmethod
    def _require(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise StoreUnavailable("store is closed")
        return conn

    async def _on(self, thread: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except sqlite3.OperationalError as exc:
            # Disk full, I/O errors, locked or unopenable files: the database may
            # serve again later, so callers see "unavailable", not a bug.
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"sqlite: {exc}") from exc
        except RuntimeError as exc:  # executor shut down
            raise StoreUnavailable("store is closed") from exc
