"""Tracking plans and the quarantine on :class:`~eventwire.store.postgres.PostgresStore`
(docs/tracking-plans.md). A new plan version is announced with NOTIFY on
``eventwire_plans`` in its own transaction, so every replica's listener hears of
it as soon as it commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from psycopg import sql

from eventwire.store.base import AlertRow, EventRow
from eventwire.store.filters import PYFORMAT, Conditions, quarantined
from eventwire.store.postgres.writes import _NOTIFY, Writes
from eventwire.store.quarantine import (
    PlanRecord,
    QuarantineFilter,
    QuarantineGroup,
    QuarantineRow,
    StoredQuarantine,
)

PLANS_CHANNEL: Final = "eventwire_plans"
_HAS_RULE: Final = "violations @> jsonb_build_array(jsonb_build_object('rule', {}::text))"
_COLUMNS: Final = (
    "tenant, kind, key, name, row::text, violations::text, plan_version, quarantined_at"
)
_PLAN_LOCK: Final = 0x6576_656E_7470_6C6E  # "eventpln": one applier at a time
_PLAN: Final = "SELECT version, document, applied_at, applied_by FROM eventwire_plans"


class Plans(Writes):
    # -- plans -----------------------------------------------------------------------

    async def put_plan(self, document: str, applied_at: int, applied_by: str) -> int:
        async def run() -> int:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PLAN_LOCK,))
                cur = await conn.execute(
                    "INSERT INTO eventwire_plans (version, document, applied_at, applied_by)"
                    " SELECT coalesce(max(version), 0) + 1, %s, %s, %s FROM eventwire_plans"
                    " RETURNING version",
                    (document, applied_at, applied_by),
                )
                row = await cur.fetchone()
                await conn.execute(_NOTIFY, (PLANS_CHANNEL,))
            assert row is not None  # noqa: S101 - INSERT ... RETURNING returns its row
            return int(row[0])

        version = await self._bounded(run)
        self.plans_changed()
        return version

    async def get_plan(self, version: int = 0) -> PlanRecord | None:
        query = f"{_PLAN} WHERE version = %s" if version else f"{_PLAN} ORDER BY version DESC"
        row = await self._one(query + " LIMIT 1", (version,) if version else ())
        return None if row is None else PlanRecord(*row)

    async def plan_version(self) -> int:
        row = await self._one("SELECT max(version) FROM eventwire_plans", ())
        return int(row[0] or 0) if row else 0

    def plans_changed(self) -> None:
        for callback in self._plan_watchers:
            callback()

    # -- quarantine --------------------------------------------------------------------

    async def quarantine_groups(
        self, where: QuarantineFilter, limit: int
    ) -> tuple[list[QuarantineGroup], int]:
        conditions = quarantined(Conditions(PYFORMAT), where, _HAS_RULE)
        extra = " AND v ->> 'rule' = %s" if where.rule else ""
        groups_sql = (
            "SELECT kind, name, v ->> 'rule' AS r, count(DISTINCT seq) AS n"  # noqa: S608
            " FROM eventwire_quarantine, jsonb_array_elements(violations) AS v"
            f" WHERE {conditions.sql()}{extra}"
            " GROUP BY kind, name, r ORDER BY n DESC, kind, name, r LIMIT %s"
        )
        total_sql = f"SELECT count(*) FROM eventwire_quarantine WHERE {conditions.sql()}"  # noqa: S608
        params: list[Any] = [*conditions.params, *([where.rule] if where.rule else []), limit]

        async def run() -> tuple[list[QuarantineGroup], int]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL(groups_sql), params)
                groups = [QuarantineGroup(k, n, r, int(c)) for k, n, r, c in await cur.fetchall()]
                cur = await conn.execute(sql.SQL(total_sql), conditions.params)
                total = await cur.fetchone()
            return groups, int(total[0]) if total else 0

        return await self._bounded(run)

    async def read_quarantine(
        self, where: QuarantineFilter, after: int, limit: int
    ) -> list[StoredQuarantine]:
        conditions = quarantined(Conditions(PYFORMAT).add("seq > {}", after), where, _HAS_RULE)
        statement = (
            f"SELECT seq, {_COLUMNS} FROM eventwire_quarantine"  # noqa: S608 - fixed fragments
            f" WHERE {conditions.sql()} ORDER BY seq LIMIT %s"
        )

        async def run() -> list[StoredQuarantine]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    sql.SQL(statement),
                    [*conditions.params, limit],
                )
                rows = await cur.fetchall()
            return [StoredQuarantine(int(r[0]), QuarantineRow(*r[1:])) for r in rows]

        return await self._bounded(run)

    async def release_quarantine(
        self, events: Sequence[tuple[int, EventRow]], alerts: Sequence[tuple[int, AlertRow]]
    ) -> tuple[int, int]:
        by_seq: dict[int, EventRow | AlertRow] = dict(events)
        by_seq.update(alerts)
        if not by_seq:
            return 0, 0

        async def run() -> tuple[int, int]:
            async with self._pool.connection() as conn, conn.transaction():
                # Deleted first: what another replica released meanwhile is gone,
                # and only what this transaction deleted is inserted (exactly once).
                cur = await conn.execute(
                    "DELETE FROM eventwire_quarantine WHERE seq = ANY(%s) RETURNING seq",
                    (list(by_seq),),
                )
                released = [by_seq[int(seq)] for (seq,) in await cur.fetchall()]
                moved_events = [r for r in released if isinstance(r, EventRow)]
                moved_alerts = [r for r in released if isinstance(r, AlertRow)]
                fresh = 0
                if moved_events:
                    counts = await self._insert_events(
                        conn, ((0, row) for row in moved_events), single=True
                    )
                    fresh += counts[0][1]
                    await conn.execute(_NOTIFY, ("eventwire_events",))
                if moved_alerts:
                    ids = await self._insert_alerts(conn, moved_alerts)
                    fresh += sum(a.tracking_id == i for a, i in zip(moved_alerts, ids, strict=True))
                    await conn.execute(_NOTIFY, ("eventwire_alerts",))
            return len(released), len(released) - fresh

        result = await self._bounded(run)
        if result[0]:
            self._publish("events")
            self._publish("alerts")
        return result

    async def discard_quarantine(self, where: QuarantineFilter) -> int:
        conditions = quarantined(Conditions(PYFORMAT), where, _HAS_RULE)
        statement = f"DELETE FROM eventwire_quarantine WHERE {conditions.sql()}"  # noqa: S608
        return await self._count(statement, conditions.params)

    async def purge_quarantine(self, quarantined_before: int, limit: int) -> int:
        return await self._count(
            "DELETE FROM eventwire_quarantine WHERE seq IN (SELECT seq FROM eventwire_quarantine"
            " WHERE quarantined_at < %s ORDER BY seq LIMIT %s)",
            [quarantined_before, limit],
        )

    async def _count(self, statement: str, params: Sequence[Any]) -> int:
        async def run() -> int:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(sql.SQL(statement), params)
                return int(cur.rowcount)

        return await self._bounded(run)

    async def _one(self, statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        async def run() -> tuple[Any, ...] | None:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL(statement), params)
                return await cur.fetchone()

        return await self._bounded(run)
