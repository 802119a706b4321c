"""Tracking plans and the quarantine on :class:`~eventwire.store.sqlite.SQLiteStore`
(docs/tracking-plans.md). Writes run on the writer connection like every
commit; reads on the reader's thread. Other processes on the same file (``--workers``)
learn of a new plan by polling :meth:`plan_version`, which costs one index lookup."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

from eventwire.store.base import AlertRow, EventRow
from eventwire.store.filters import QMARK, Conditions, quarantined
from eventwire.store.quarantine import (
    PlanRecord,
    QuarantineFilter,
    QuarantineGroup,
    QuarantineRow,
    StoredQuarantine,
)
from eventwire.store.sqlite.writes import Writes, insert_alert, insert_events

_HAS_RULE: Final = (
    "EXISTS (SELECT 1 FROM json_each(violations) WHERE json_extract(value, '$.rule') = {})"
)
_COLUMNS: Final = "tenant, kind, key, name, row, violations, plan_version, quarantined_at"


class Plans(Writes):
    # -- plans -----------------------------------------------------------------------

    async def put_plan(self, document: str, applied_at: int, applied_by: str) -> int:
        version = await self._transaction(_put_plan, document, applied_at, applied_by)
        for callback in self._plan_watchers:
            callback()
        return version

    async def get_plan(self, version: int = 0) -> PlanRecord | None:
        return await self._on(self._read_thread, self._get_plan, version)

    def _get_plan(self, version: int) -> PlanRecord | None:
        conn = self._require(self._reader)
        select = "SELECT version, document, applied_at, applied_by FROM eventwire_plans"
        if version:
            row = conn.execute(f"{select} WHERE version = ?", (version,)).fetchone()
        else:
            row = conn.execute(f"{select} ORDER BY version DESC LIMIT 1").fetchone()
        return None if row is None else PlanRecord(*row)

    async def plan_version(self) -> int:
        return await self._on(self._read_thread, self._plan_version)

    def _plan_version(self) -> int:
        conn = self._require(self._reader)
        row = conn.execute("SELECT max(version) FROM eventwire_plans").fetchone()
        return int(row[0] or 0)

    def watch_plans(self, callback: Callable[[], None]) -> None:
        self._plan_watchers.append(callback)

    # -- quarantine --------------------------------------------------------------------

    async def quarantine_groups(
        self, where: QuarantineFilter, limit: int
    ) -> tuple[list[QuarantineGroup], int]:
        return await self._on(self._read_thread, self._groups, where, limit)

    def _groups(self, q: QuarantineFilter, limit: int) -> tuple[list[QuarantineGroup], int]:
        conn = self._require(self._reader)
        where = quarantined(Conditions(QMARK), q, _HAS_RULE)
        rule = "json_extract(v.value, '$.rule')"
        extra = f" AND {rule} = ?" if q.rule else ""
        statement = (
            f"SELECT kind, name, {rule} AS r, count(DISTINCT seq) AS n"  # noqa: S608 - fixed fragments
            f" FROM eventwire_quarantine, json_each(violations) AS v WHERE {where.sql()}{extra}"
            " GROUP BY kind, name, r ORDER BY n DESC, kind, name, r LIMIT ?"
        )
        params = [*where.params, *([q.rule] if q.rule else []), limit]
        groups = [QuarantineGroup(*row) for row in conn.execute(statement, params)]
        total = conn.execute(
            f"SELECT count(*) FROM eventwire_quarantine WHERE {where.sql()}",  # noqa: S608
            where.params,
        ).fetchone()[0]
        return groups, int(total)

    async def read_quarantine(
        self, where: QuarantineFilter, after: int, limit: int
    ) -> list[StoredQuarantine]:
        return await self._on(self._read_thread, self._read_quarantine, where, after, limit)

    def _read_quarantine(
        self, q: QuarantineFilter, after: int, limit: int
    ) -> list[StoredQuarantine]:
        where = quarantined(Conditions(QMARK).add("seq > {}", after), q, _HAS_RULE)
        statement = (
            f"SELECT seq, {_COLUMNS} FROM eventwire_quarantine"  # noqa: S608 - fixed fragments
            f" WHERE {where.sql()} ORDER BY seq LIMIT ?"
        )
        rows = self._require(self._reader).execute(statement, [*where.params, limit])
        return [StoredQuarantine(r[0], QuarantineRow(*r[1:])) for r in rows]

    async def release_quarantine(
        self, events: Sequence[tuple[int, EventRow]], alerts: Sequence[tuple[int, AlertRow]]
    ) -> tuple[int, int]:
        result = await self._transaction(_release, events, alerts, on_thread=True)
        if result[0]:
            self._publish("events")
            self._publish("alerts")
        return result

    async def discard_quarantine(self, where: QuarantineFilter) -> int:
        return await self._transaction(_discard, where, on_thread=True)

    async def purge_quarantine(self, quarantined_before: int, limit: int) -> int:
        return await self._transaction(_purge, quarantined_before, limit, on_thread=True)


def _put_plan(conn: sqlite3.Connection, document: str, applied_at: int, applied_by: str) -> int:
    version = int(
        conn.execute("SELECT coalesce(max(version), 0) + 1 FROM eventwire_plans").fetchone()[0]
    )
    conn.execute(
        "INSERT INTO eventwire_plans (version, document, applied_at, applied_by)"
        " VALUES (?, ?, ?, ?)",
        (version, document, applied_at, applied_by),
    )
    return version


def _release(
    conn: sqlite3.Connection,
    events: Sequence[tuple[int, EventRow]],
    alerts: Sequence[tuple[int, AlertRow]],
) -> tuple[int, int]:
    # Deleted first: a row another process released meanwhile is gone, and
    # only what this transaction deleted is inserted (exactly once).
    moved = fresh = 0
    delete = "DELETE FROM eventwire_quarantine WHERE seq = ?"
    event_rows = [row for seq, row in events if conn.execute(delete, (seq,)).rowcount]
    if event_rows:
        fresh += insert_events(conn, event_rows)
        moved += len(event_rows)
    for seq, alert in alerts:
        if conn.execute(delete, (seq,)).rowcount:
            moved += 1
            fresh += insert_alert(conn, alert) == alert.tracking_id
    return moved, moved - fresh


def _discard(conn: sqlite3.Connection, q: QuarantineFilter) -> int:
    where = quarantined(Conditions(QMARK), q, _HAS_RULE)
    cur = conn.execute(f"DELETE FROM eventwire_quarantine WHERE {where.sql()}", where.params)  # noqa: S608
    return int(cur.rowcount)


def _purge(conn: sqlite3.Connection, before: int, limit: int) -> int:
    cur = conn.execute(
        "DELETE FROM eventwire_quarantine WHERE seq IN (SELECT seq FROM eventwire_quarantine"
        " WHERE quarantined_at < ? ORDER BY seq LIMIT ?)",
        (before, limit),
    )
    return int(cur.rowcount)
