"""The read side of :class:`~eventwire.store.postgres.PostgresStore`: lookups, counts,
aggregates, and reads in commit order (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from psycopg import sql

from eventwire.store.base import (
    ORIGIN,
    Aggregate,
    AlertFilter,
    AlertPage,
    AlertRow,
    EventAggregation,
    EventPage,
    EventQuery,
    EventRow,
    Kind,
    Position,
    StoredAlert,
    StoredEvent,
    StoreUnavailable,
)
from eventwire.store.filters import PYFORMAT, Conditions, alerts_read, events_counted, events_read
from eventwire.store.postgres.connection import PostgresConnection

_ALERT_COLUMNS: Final = (
    "tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key,"
    " severity, message, attributes::text"
)
_ALERT_BY_ID: Final = f"""
    SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant = %s AND tracking_id = %s
"""  # noqa: S608 - constant identifiers only
# The oldest transaction still running: rows of older ones are final.
WATERMARK: Final = "pg_snapshot_xmin(pg_current_snapshot())"
_POSITION_ROW: Final = "(xid, seq) > ({}::text::xid8, {})"


class Reads(PostgresConnection):
    # -- reads ---------------------------------------------------------------------

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        async def run() -> AlertRow | None:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_ALERT_BY_ID, (tenant, tracking_id))
                row = await cur.fetchone()
            return None if row is None else AlertRow(*row)

        return await self._bounded(run)

    async def count_events(self, tenant: str, query: EventQuery) -> int:
        where = events_counted(PYFORMAT, tenant, query)
        statement = sql.SQL("SELECT count(*) FROM events WHERE {}").format(sql.SQL(where.sql()))
        params = where.params

        async def run() -> int:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                row = await cur.fetchone()
            return int(row[0]) if row else 0

        return await self._bounded(run)

    # -- reads in commit order (see the module docstring) ---------------------------

    async def read_alerts(self, after: Position, where: AlertFilter, limit: int) -> AlertPage:
        rows, watermark, pending = await self._page(*alert_page_query(after, where, limit))
        page = [StoredAlert(Position(r[0], r[1]), AlertRow(*r[2:])) for r in rows]
        return AlertPage(page, _through(after, page, limit, watermark), pending)

    async def read_events(
        self, after: Position, tenant: str | None, query: EventQuery, limit: int
    ) -> EventPage:
        rows, watermark, pending = await self._page(*event_page_query(after, tenant, query, limit))
        page = [StoredEvent(Position(r[0], r[1]), EventRow(*r[2:])) for r in rows]
        return EventPage(page, _through(after, page, limit, watermark), pending)

    async def _page(
        self, statement: sql.Composed, params: list[Any]
    ) -> tuple[list[tuple[Any, ...]], int, bool]:
        """Final rows, the watermark, and whether later rows already wait: one snapshot."""

        async def run() -> tuple[list[tuple[Any, ...]], int, bool]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                rows = await cur.fetchall()
            watermark, pending = int(rows[0][0]), bool(rows[0][1])
            return [r[2:] for r in rows if r[2] is not None], watermark, pending

        return await self._bounded(run)

    async def head(self, kind: Kind) -> Position:
        return await self._snapshot_position(WATERMARK)

    async def tail(self, kind: Kind) -> Position:
        # xmax: the first transaction id not yet handed out.
        return await self._snapshot_position("pg_snapshot_xmax(pg_current_snapshot())")

    async def _snapshot_position(self, expression: str) -> Position:
        async def run() -> Position:
            async with self._pool.connection() as conn:
                cur = await conn.execute(f"SELECT {expression}::text::int8")
                row = await cur.fetchone()
            assert row is not None  # noqa: S101 - a SELECT without FROM has one row
            return Position(int(row[0]), 0)

        return await self._bounded(run)

    async def aggregate_events(self, tenant: str, query: EventAggregation) -> list[Aggregate]:
        params: list[Any] = []
        if query.bucket_ms:
            bucket = sql.SQL("(ts / %s) * %s")
            params += [query.bucket_ms, query.bucket_ms]
        else:
            bucket = sql.SQL("0::int8")
        if query.group_by in ("event_name", "user_id"):
            group: sql.Composable = sql.Identifier(query.group_by)
        elif query.group_by.startswith("properties."):
            group = sql.SQL("coalesce(properties ->> %s, '')")
            params.append(query.group_by.removeprefix("properties."))
        else:
            group = sql.SQL("''")
        where = events_read(Conditions(PYFORMAT), tenant, query)
        params += where.params
        statement = sql.SQL(
            "SELECT {bucket} AS b, {group} AS g, count(*) AS n,"
            " count(DISTINCT nullif(user_id, '')) FROM events WHERE {conditions}"
            " GROUP BY b, g ORDER BY b, n DESC, g LIMIT %s"
        ).format(bucket=bucket, group=group, conditions=sql.SQL(where.sql()))
        params.append(query.limit)

        async def run() -> list[Aggregate]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                rows = await cur.fetchall()
            return [Aggregate(int(b), str(g), int(n), int(u)) for b, g, n, u in rows]

        return await self._bounded(run)

    async def retained_after(self, kind: Kind) -> Position:
        async def run() -> Position:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT xid, seq FROM eventwire_retention WHERE kind = %s", (kind,)
                )
                row = await cur.fetchone()
            return ORIGIN if row is None else Position(int(row[0]), int(row[1]))

        return await self._bounded(run)

    async def cursor_key(self) -> bytes:
        if not self._cursor_key:
            raise StoreUnavailable("store is not open")
        return self._cursor_key


def alert_page_query(
    after: Position, where: AlertFilter, limit: int
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters of :meth:`PostgresStore.read_alerts`."""
    conditions = alerts_read(Conditions(PYFORMAT).add(_POSITION_ROW, after.xid, after.seq), where)
    return _page_statement("alerts", _ALERT_COLUMNS, conditions), [*conditions.params, limit]


def event_page_query(
    after: Position, tenant: str | None, query: EventQuery, limit: int
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters of :meth:`PostgresStore.read_events`."""
    # concat(): the same comparison, but no index on tenant or event_name can
    # serve it, so the planner walks events_by_position in order. Taking
    # events_by_name_ts and sorting would re-read every matching row per page.
    conditions = Conditions(PYFORMAT).add(_POSITION_ROW, after.xid, after.seq)
    events_read(conditions, tenant, query, spelled="concat({})")
    columns = "tenant, event_id, event_name, user_id, ts, received_at, properties::text"
    return _page_statement("events", columns, conditions), [*conditions.params, limit]


def _page_statement(table: str, columns: str, conditions: Conditions) -> sql.Composed:
    # One statement, so one snapshot: its xmin decides which rows are final.
    return sql.SQL(
        "WITH w AS MATERIALIZED ("
        " SELECT x, EXISTS (SELECT 1 FROM {table} WHERE xid >= x) AS pending"
        " FROM (SELECT {watermark} AS x) s)"
        " SELECT w.x::text::int8, w.pending, r.* FROM w LEFT JOIN LATERAL ("
        # Aliased: ORDER BY xid would otherwise name the int8 output column
        # and sort every row instead of walking the (xid, seq) index.
        " SELECT xid::text::int8 AS position_xid, seq, {columns} FROM {table}"
        " WHERE {conditions} AND xid < w.x ORDER BY xid, seq LIMIT %s"
        ") r ON true"
    ).format(
        watermark=sql.SQL(WATERMARK),
        columns=sql.SQL(columns),
        table=sql.Identifier(table),
        conditions=sql.SQL(conditions.sql()),
    )


def _through(
    after: Position, page: Sequence[tuple[Position, object]], limit: int, watermark: int
) -> Position:
    """How far a page read from ``after`` settles: its last row when it is full,
    else every transaction older than the watermark."""
    if len(page) >= limit:
        return page[-1][0]
    return max(after, Position(watermark, 0))
