"""The write side of :class:`~eventwire.store.sqlite.SQLiteStore`: group commits,
retention's deletes, and the checks that come with a write (see the package
docstring for what runs where)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Final

from eventwire.store.base import (
    AlertRow,
    CommitResult,
    EventValues,
    Kind,
    Position,
    StoreGone,
    StoreUnavailable,
)
from eventwire.store.migrations import MIGRATIONS
from eventwire.store.quarantine import QuarantineRow
from eventwire.store.sqlite.connection import (
    _BUSY_TIMEOUT_MS,
    SQLiteConnection,
    T,
    _rollback,
    _store_error,
    _try_begin,
)
from eventwire.store.sqlite.reads import ALERT_COLUMNS, TABLES

_EVENT_VALUES: Final = "(?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''))"
_INSERT_EVENTS: Final = (
    "INSERT INTO events (tenant, event_id, event_name, user_id, ts, received_at, properties,"
    " plan_version, violations) VALUES {} ON CONFLICT DO NOTHING"
)
_INSERT_EVENT: Final = _INSERT_EVENTS.format(_EVENT_VALUES)
_CHUNK: Final = 100
"""Rows a statement inserts at once: one step a chunk, not one a row (see insert_events)."""
_INSERT_CHUNK: Final = _INSERT_EVENTS.format(", ".join([_EVENT_VALUES] * _CHUNK))
INSERT_QUARANTINE: Final = (
    "INSERT INTO eventwire_quarantine (tenant, kind, key, name, row, violations, plan_version,"
    " quarantined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_INSERT_ALERT: Final = (
    f"INSERT INTO alerts ({ALERT_COLUMNS})"  # noqa: S608 - constant identifiers only
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_ALERT_BY_KEY: Final = "SELECT tracking_id FROM alerts WHERE tenant = ? AND idempotency_key = ?"


class Writes(SQLiteConnection):
    # -- writes --------------------------------------------------------------------

    async def commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        result = await self._transaction(self._fill, events, alerts, quarantine)
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
        conn: sqlite3.Connection,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        inserted = [insert_events(conn, group) for group in events]
        tracking_ids = [insert_alert(conn, alert) for alert in alerts]
        if quarantine:
            conn.executemany(INSERT_QUARANTINE, quarantine)
        return CommitResult(inserted, tracking_ids)

    async def _transaction(self, fill: Callable[..., T], *args: Any, on_thread: bool = False) -> T:
        """``fill(conn, *args)`` in one write transaction, committed (see the package
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
                if fault := self._files.wal_changed():
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

    # -- retention ------------------------------------------------------------------

    async def purge(
        self, kind: Kind, received_before: int, limit: int, upto: Position | None = None
    ) -> int:
        # A bulk delete: on the writer thread, so that ingest keeps the loop.
        return await self._transaction(
            self._purge, kind, received_before, limit, upto, on_thread=True
        )

    @staticmethod
    def _purge(
        conn: sqlite3.Connection,
        kind: Kind,
        received_before: int,
        limit: int,
        upto: Position | None,
    ) -> int:
        table = TABLES[kind]
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
            if upto is not None and seq > upto.seq:
                break  # not delivered yet by some destination
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


def insert_alert(conn: sqlite3.Connection, alert: AlertRow) -> str:
    """Insert ``alert`` unless its idempotency key is stored; the stored tracking id."""
    if conn.execute(_INSERT_ALERT, alert).rowcount == 1:
        return alert.tracking_id
    row = conn.execute(_ALERT_BY_KEY, (alert.tenant, alert.idempotency_key))
    tracking_id: str = row.fetchone()[0]
    return tracking_id


def insert_events(conn: sqlite3.Connection, rows: Sequence[EventValues]) -> int:
    """Insert ``rows``, skipping stored ids; how many were new.

    Whole chunks of :data:`_CHUNK` rows go in one multi-row ``INSERT``: one
    ``sqlite3_step`` and reset a chunk instead of a row, and no per-row round of
    the sqlite3 module's ``executemany``: 27,500 -> 20,300 instructions an event
    for 1,000-event batches (bench/notes.md, B1). A key repeated inside a chunk
    is a duplicate of its first row, as it is row by row.
    """
    whole = len(rows) - len(rows) % _CHUNK
    count = 0
    for start in range(0, whole, _CHUNK):
        values = list(chain.from_iterable(rows[start : start + _CHUNK]))
        count += conn.execute(_INSERT_CHUNK, values).rowcount
    if whole < len(rows):
        count += conn.executemany(_INSERT_EVENT, rows[whole:]).rowcount
    return count


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA user_version = " + str(MIGRATIONS[-1].version))
