"""The write side of :class:`~eventwire.store.postgres.PostgresStore`: group commits
(COPY or multi-row INSERT, see the package docstring) and retention's deletes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from eventwire.store.base import (
    AlertRow,
    CommitResult,
    EventRow,
    EventValues,
    Kind,
    Position,
    StoreError,
    StoreGone,
    StoreUnavailable,
)
from eventwire.store.postgres.connection import (
    _DEADLOCK_RETRIES,
    _EVENT_COLUMNS,
    _STAGING,
    COPY_THRESHOLD,
    Conn,
    PostgresConnection,
)
from eventwire.store.postgres.reads import WATERMARK
from eventwire.store.quarantine import QuarantineRow

_COPY_STAGING: Final = f"COPY {_STAGING} (grp, {_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_STAGING_TYPES: Final = (
    "int4",
    "text",
    "text",
    "text",
    "text",
    "int8",
    "int8",
    "text",
    "int8",
    "text",
)

# Rows go in key order (byte order, cheaper than the database collation) so
# that concurrent replicas lock keys in the same order.
_MOVE_STAGED_ONE: Final = f"""
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb,
           plan_version, nullif(violations, '')::jsonb
    FROM {_STAGING} ORDER BY tenant COLLATE "C", event_id COLLATE "C"
    ON CONFLICT (tenant, event_id) DO NOTHING
"""  # noqa: S608 - constant identifiers only
_MOVE_STAGED_MANY: Final = f"""
    WITH ins AS ({_MOVE_STAGED_ONE} RETURNING tenant, event_id)
    SELECT s.grp, count(*) FROM ins JOIN {_STAGING} s USING (tenant, event_id) GROUP BY s.grp
"""  # noqa: S608 - constant identifiers only

_UNNEST_EVENTS: Final = """
    SELECT * FROM unnest(
        %s::int4[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[],
        %s::text[], %s::int8[], %s::text[]
    ) AS t (grp, tenant, event_id, event_name, user_id, ts, received_at, properties,
            plan_version, violations)
"""
_INSERT_ONE: Final = f"""
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb,
           plan_version, nullif(violations, '')::jsonb
    FROM ({_UNNEST_EVENTS}) AS input ORDER BY tenant COLLATE "C", event_id COLLATE "C"
    ON CONFLICT (tenant, event_id) DO NOTHING
"""  # noqa: S608 - constant identifiers only
_INSERT_MANY: Final = f"""
    WITH input AS MATERIALIZED ({_UNNEST_EVENTS}),
    ins AS (
        INSERT INTO events ({_EVENT_COLUMNS})
        SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb,
           plan_version, nullif(violations, '')::jsonb
        FROM input ORDER BY tenant COLLATE "C", event_id COLLATE "C"
        ON CONFLICT (tenant, event_id) DO NOTHING
        RETURNING tenant, event_id
    )
    SELECT input.grp, count(*) FROM ins JOIN input USING (tenant, event_id) GROUP BY input.grp
"""  # noqa: S608 - constant identifiers only

_INSERT_ALERTS: Final = """
    INSERT INTO alerts (tracking_id, tenant, device_id, alert_type, ts, received_at,
                        idempotency_key, severity, message, attributes)
    SELECT tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key,
           severity, message, attributes::jsonb
    FROM unnest(
        %s::text[], %s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[], %s::text[],
        %s::int4[], %s::text[], %s::text[]
    ) AS t (tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key,
            severity, message, attributes)
    ORDER BY tenant COLLATE "C", idempotency_key COLLATE "C", tracking_id COLLATE "C"
    ON CONFLICT DO NOTHING
    RETURNING tracking_id
"""
_ALERTS_BY_KEY: Final = """
    SELECT a.tenant, a.idempotency_key, a.tracking_id
    FROM alerts a JOIN unnest(%s::text[], %s::text[]) AS k (tenant, idempotency_key)
    USING (tenant, idempotency_key)
"""
_PURGE_LOCK: Final = 0x6576_656E_7470_7267  # "eventprg": one purger at a time
# The payload is the writer's xid: a reader already past it skips the wake-up
# (this replica's readers were woken by the commit itself, before the notification).
_NOTIFY: Final = "SELECT pg_notify(%s, pg_current_xact_id()::text)"


class Writes(PostgresConnection):
    # -- writes --------------------------------------------------------------------

    async def commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        if self._gone:
            raise StoreGone(self._gone)
        if not any(events) and not alerts and not quarantine:
            return CommitResult([0] * len(events), [])
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                result = await self._bounded(lambda: self._commit(events, alerts, quarantine))
            except StoreUnavailable as exc:
                retryable = isinstance(exc.__cause__, psycopg.errors.TransactionRollback)
                if not retryable or attempt == _DEADLOCK_RETRIES:
                    raise
                continue
            # This replica's readers need not wait for the notification's round
            # trip; other replicas' readers get that.
            if alerts:
                self._publish("alerts")
            if any(events):
                self._publish("events")
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        inserted = [0] * len(events)
        # The first occurrence of a key in the batch is the one stored, as if the
        # groups were inserted in order; later ones are duplicates.
        unique: dict[tuple[str, str], tuple[int, EventValues]] = {}
        for group, rows in enumerate(events):
            for row in rows:
                unique.setdefault((row[0], row[1]), (group, row))  # tenant, event_id
        async with self._pool.connection() as conn, conn.transaction():
            if unique:
                single = len(events) == 1
                method = self.write_method
                if method == "auto":
                    method = "copy" if len(unique) >= COPY_THRESHOLD else "insert"
                if method == "copy":
                    counts = await self._copy_events(conn, unique.values(), single=single)
                else:
                    counts = await self._insert_events(conn, unique.values(), single=single)
                for group, count in counts:
                    inserted[group] = count
                await conn.execute(_NOTIFY, ("eventwire_events",))
            tracking_ids = await self._insert_alerts(conn, alerts) if alerts else []
            if quarantine:
                await insert_quarantine(conn, quarantine)
            if alerts:
                # Delivered to listeners at COMMIT, and only if it commits.
                await conn.execute(_NOTIFY, ("eventwire_alerts",))
        return CommitResult(inserted, tracking_ids)

    @staticmethod
    async def _copy_events(
        conn: Conn, rows: Iterable[tuple[int, EventValues]], *, single: bool
    ) -> list[tuple[int, int]]:
        cur = conn.cursor()
        async with cur.copy(_COPY_STAGING) as copy:
            copy.set_types(_STAGING_TYPES)
            for group, row in rows:
                await copy.write_row((group, *row))
        if single:
            await cur.execute(_MOVE_STAGED_ONE)
            return [(0, cur.rowcount)]
        await cur.execute(_MOVE_STAGED_MANY)
        return [(int(g), int(n)) for g, n in await cur.fetchall()]

    @staticmethod
    async def _insert_events(
        conn: Conn, rows: Iterable[tuple[int, EventValues]], *, single: bool
    ) -> list[tuple[int, int]]:
        groups: list[int] = []
        columns: list[list[Any]] = [[] for _ in EventRow._fields]
        for group, row in rows:
            groups.append(group)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        cur = conn.cursor()
        if single:
            await cur.execute(_INSERT_ONE, (groups, *columns))
            return [(0, cur.rowcount)]
        await cur.execute(_INSERT_MANY, (groups, *columns))
        return [(int(g), int(n)) for g, n in await cur.fetchall()]

    @staticmethod
    async def _insert_alerts(conn: Conn, alerts: Sequence[AlertRow]) -> list[str]:
        # Within the batch, a repeated key gets the first alert's tracking id.
        first: dict[tuple[str, str], AlertRow] = {}
        unique: list[AlertRow] = []
        for alert in alerts:
            if alert.idempotency_key is None:
                unique.append(alert)
            elif (alert.tenant, alert.idempotency_key) not in first:
                first[alert.tenant, alert.idempotency_key] = alert
                unique.append(alert)
        columns: list[list[Any]] = [list(column) for column in zip(*unique, strict=True)]
        cur = await conn.execute(_INSERT_ALERTS, columns)
        stored = {tracking_id for (tracking_id,) in await cur.fetchall()}
        existing: dict[tuple[str, str], str] = {}
        missing = [a for a in unique if a.tracking_id not in stored]
        if missing:
            if any(a.idempotency_key is None for a in missing):
                raise StoreError("tracking id collision with a stored alert")
            cur = await conn.execute(
                _ALERTS_BY_KEY,
                ([a.tenant for a in missing], [a.idempotency_key for a in missing]),
            )
            existing = {(t, k): tid for t, k, tid in await cur.fetchall()}
        out: list[str] = []
        for alert in alerts:
            if alert.idempotency_key is None:
                out.append(alert.tracking_id)
                continue
            key = (alert.tenant, alert.idempotency_key)
            if first[key].tracking_id in stored:
                out.append(first[key].tracking_id)
            elif key in existing:
                out.append(existing[key])
            else:
                raise StoreUnavailable("postgresql: alert neither stored nor found; retry")
        return out

    # -- retention -------------------------------------------------------------------

    async def purge(
        self, kind: Kind, received_before: int, limit: int, upto: Position | None = None
    ) -> int:
        table = sql.Identifier(kind)
        oldest = sql.SQL(
            "SELECT xid::text::int8 AS position_xid, seq, received_at FROM {table}"
            " WHERE xid < {watermark} ORDER BY xid, seq LIMIT %s"
        ).format(table=table, watermark=sql.SQL(WATERMARK))
        delete = sql.SQL("DELETE FROM {table} WHERE (xid, seq) <= (%s::text::xid8, %s)").format(
            table=table
        )

        async def run() -> int:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_PURGE_LOCK,))
                locked = await cur.fetchone()
                if not locked or not locked[0]:
                    return 0  # another replica is purging
                cur = await conn.execute(oldest, (limit,))
                end: Position | None = None
                for xid, seq, received_at in await cur.fetchall():
                    if received_at >= received_before:
                        break
                    if upto is not None and Position(int(xid), int(seq)) > upto:
                        break  # not delivered yet by some destination
                    end = Position(int(xid), int(seq))
                if end is None:
                    return 0
                # Every row up to ``end`` is final (older than the watermark)
                # and was among those just read: the deleted ones are a prefix.
                cur = await conn.execute(delete, end)
                deleted = cur.rowcount
                await conn.execute(
                    "INSERT INTO eventwire_retention (kind, xid, seq) VALUES (%s, %s, %s)"
                    " ON CONFLICT (kind) DO UPDATE SET xid = excluded.xid, seq = excluded.seq",
                    (kind, *end),
                )
            return deleted

        return await self._bounded(run)


async def insert_quarantine(conn: Conn, rows: Sequence[QuarantineRow]) -> None:
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
    await conn.execute(_INSERT_QUARANTINE, columns)


_INSERT_QUARANTINE: Final = """
    INSERT INTO eventwire_quarantine (tenant, kind, key, name, row, violations, plan_version,
                                      quarantined_at)
    SELECT tenant, kind, key, name, row::jsonb, violations::jsonb, plan_version, quarantined_at
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                %s::int8[], %s::int8[])
        AS t (tenant, kind, key, name, row, violations, plan_version, quarantined_at)
    ORDER BY tenant COLLATE "C", kind COLLATE "C", key COLLATE "C"
    ON CONFLICT DO NOTHING
"""
