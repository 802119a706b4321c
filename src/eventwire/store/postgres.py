"""PostgreSQL store: many stateless replicas over one shared database.

Writes arrive as whole group commits from the ingest pipeline and go to the
server as one statement per kind (not one per row), in one transaction:

* ``copy``: the unique rows are COPYed in binary into a per-connection
  temporary staging table, then moved with ``INSERT ... SELECT ... ON CONFLICT
  DO NOTHING``. 2-2.6x as fast as ``insert`` from ~100 rows on (78k-113k vs
  35k-43k rows/s at 1,000-10,000 rows per commit on the 2-core reference
  machine, with 6-10x less client CPU; see ``bench/store_throughput.py`` and
  docs/scaling.md), but two round trips more.
* ``insert``: one ``INSERT ... SELECT FROM unnest(<one array per column>) ...
  ON CONFLICT DO NOTHING``, the arrays sent as parameters; the faster one for
  small batches (0.9-1.0 vs 1.3-1.4 ms for a single row).
* ``auto`` (default): ``insert`` below :data:`COPY_THRESHOLD` rows, where the
  two cross over, else ``copy``.

Either way the statement returns, per request (group), how many of its rows were
new, and the unique constraint ``(tenant, event_id)`` makes dedupe hold across
replicas: a concurrent insert of the same key waits for the other transaction
and is then skipped. Rows are inserted in key order, so two replicas committing
overlapping keys take their row locks in the same order and cannot deadlock
(a deadlock or serialization failure is retried anyway).

Reads in commit order (watching alerts, exporting events) cannot go by ``seq``:
a sequence value is taken when a row is inserted, not when its transaction
commits, so with several writers a row with a lower ``seq`` can become visible
after a higher one was already read, and a reader resuming after that higher
one would never see it. Every row therefore records the transaction that wrote
it (``xid``, an xid8, which never wraps), and a position is ``(xid, seq)``. A
read delivers only rows whose transaction is older than the oldest one still
running (the snapshot's ``xmin``): those are all finished, and every
transaction that commits later has an xid at least that large, so it lands
after everything already delivered. Readers learn of new rows by LISTEN/NOTIFY
(each commit notifies ``eventwire_alerts`` / ``eventwire_events``), from any
replica. The price: while any transaction of the cluster is open, rows of
younger ones wait for it; eventwire's own are bounded by ``command_timeout``.

Nothing may hang an RPC: every operation (pool wait, connect, query) is bounded
by ``command_timeout``. The server gets it as ``statement_timeout`` and cancels
slow statements itself, cleanly; if it does not answer even that (half a second
later: a silent network), the store raises :class:`StoreUnavailable` at once
and leaves the stuck connection to be cancelled and discarded in the
background, because psycopg's own cancellation waits on the very network that
just stopped answering. ``idle_in_transaction_session_timeout`` makes sure a
replica that died mid-transaction cannot hold row locks that block the others.

Tuning lives in the URL: libpq's own parameters (``connect_timeout``,
``keepalives_idle``, ``options``, ``sslmode``...) pass through, and eventwire
reads and removes ``command_timeout`` (seconds, default 5), ``pool_min_size``
(1), ``pool_max_size`` (8) and ``write_method`` (``auto``). Behind PgBouncer in
transaction mode use ``write_method=insert`` (the COPY staging table lives in
the session), add ``options`` to its ``ignore_startup_parameters`` and set the
server-side timeouts on the role instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Literal, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from eventwire._redact import redact
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

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]
WriteMethod = Literal["auto", "copy", "insert"]

WRITE_METHODS: Final = ("auto", "copy", "insert")
COPY_THRESHOLD: Final = 32
"""From this many unique rows in one commit on, ``auto`` uses COPY (measured crossover)."""
DEFAULT_COMMAND_TIMEOUT: Final = 5.0
_CLIENT_GRACE: Final = 0.5
_DEADLOCK_RETRIES: Final = 3
# Any constant works as long as every eventwire version uses the same one:
# it serializes migrators across replicas starting at once.
_MIGRATION_LOCK: Final = 0x6576_656E_7477_6972  # "eventwir"
_OUR_PARAMS: Final = frozenset(
    {"command_timeout", "pool_min_size", "pool_max_size", "write_method"}
)

# libpq's text for a connection to a database that does not exist (SQLSTATE
# 3D000, which psycopg does not expose for a failed connection).
_NO_DATABASE: Final = re.compile(r'database "[^"]*" does not exist')

_EVENT_COLUMNS: Final = "tenant, event_id, event_name, user_id, ts, received_at, properties"
_STAGING: Final = "eventwire_staging"

# ON COMMIT DELETE ROWS empties it at every commit; it lives as long as the session.
_CREATE_STAGING: Final = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
        grp int4, tenant text, event_id text, event_name text, user_id text,
        ts int8, received_at int8, properties text
    ) ON COMMIT DELETE ROWS
"""
_COPY_STAGING: Final = f"COPY {_STAGING} (grp, {_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_STAGING_TYPES: Final = ("int4", "text", "text", "text", "text", "int8", "int8", "text")

# Rows go in key order (byte order, cheaper than the database collation) so
# that concurrent replicas lock keys in the same order.
_MOVE_STAGED_ONE: Final = f"""
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb
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
        %s::text[]
    ) AS t (grp, tenant, event_id, event_name, user_id, ts, received_at, properties)
"""
_INSERT_ONE: Final = f"""
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb
    FROM ({_UNNEST_EVENTS}) AS input ORDER BY tenant COLLATE "C", event_id COLLATE "C"
    ON CONFLICT (tenant, event_id) DO NOTHING
"""  # noqa: S608 - constant identifiers only
_INSERT_MANY: Final = f"""
    WITH input AS MATERIALIZED ({_UNNEST_EVENTS}),
    ins AS (
        INSERT INTO events ({_EVENT_COLUMNS})
        SELECT tenant, event_id, event_name, user_id, ts, received_at, properties::jsonb
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
_ALERT_COLUMNS: Final = (
    "tracking_id, tenant, device_id, alert_type, ts, received_at, idempotency_key,"
    " severity, message, attributes::text"
)
_ALERT_BY_ID: Final = f"""
    SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant = %s AND tracking_id = %s
"""  # noqa: S608 - constant identifiers only
_CHANNELS: Final[dict[Kind, str]] = {"alerts": "eventwire_alerts", "events": "eventwire_events"}
_KINDS: Final[dict[str, Kind]] = {channel: kind for kind, channel in _CHANNELS.items()}
# The oldest transaction still running: rows of older ones are final.
_WATERMARK: Final = "pg_snapshot_xmin(pg_current_snapshot())"
_POSITION_ROW: Final = "(xid, seq) > (%s::text::xid8, %s)"
_PURGE_LOCK: Final = 0x6576_656E_7470_7267  # "eventprg": one purger at a time
_CURSOR_KEY: Final = "cursor_key"
_LISTEN_RETRY: Final = 1.0
# The payload is the writer's xid: a reader already past it skips the wake-up
# (this replica's readers were woken by the commit itself, before the notification).
_NOTIFY: Final = "SELECT pg_notify(%s, pg_current_xact_id()::text)"


class PostgresStore:
    """The :class:`~eventwire.store.base.Store` on PostgreSQL; see the module docstring."""

    # A commit cancelled mid-flight leaves its pooled connection to the driver's
    # cancellation; the pipeline keeps PostgreSQL commits in its own writer task.
    cancel_safe_commit = False

    def __init__(
        self,
        url: str,
        *,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        min_size: int = 1,
        max_size: int = 8,
        write_method: WriteMethod = "auto",
    ) -> None:
        url, ours = _split_params(url)
        write_method = cast(WriteMethod, ours.get("write_method", write_method))
        if write_method not in WRITE_METHODS:
            raise ValueError(f"write_method must be one of {WRITE_METHODS}, not {write_method!r}")
        self._password = _password(url)
        self.command_timeout = float(ours.get("command_timeout", command_timeout))
        min_size = int(ours.get("pool_min_size", min_size))
        max_size = int(ours.get("pool_max_size", max_size))
        if self.command_timeout <= 0 or min_size < 0 or max_size < max(min_size, 1):
            raise ValueError("need command_timeout > 0 and 0 <= pool_min_size <= pool_max_size")
        self.write_method: WriteMethod = write_method
        self._url = url
        timeout_ms = int(self.command_timeout * 1000)
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"invalid PostgreSQL URL: {self._redact(str(exc))}") from None
        # libpq rounds connect_timeout down and treats anything below 2 as 2.
        params.setdefault("connect_timeout", max(2, math.ceil(self.command_timeout)))
        # A dead peer (pulled cable, killed VM) is noticed without waiting on TCP's
        # default of minutes, also by idle pooled connections.
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 10)
        params.setdefault("keepalives_interval", 5)
        params.setdefault("keepalives_count", 3)
        params.setdefault("application_name", "eventwire")
        params["options"] = " ".join(
            filter(
                None,
                (
                    str(params.get("options", "")),
                    f"-c statement_timeout={timeout_ms}",
                    f"-c idle_in_transaction_session_timeout={max(timeout_ms * 4, 10_000)}",
                ),
            )
        )
        self._conninfo = psycopg.conninfo.make_conninfo("", **params)
        self._database = str(params.get("dbname") or params.get("user") or "")
        self._gone = ""
        """Why the database is no longer ours (dropped); set once, never cleared."""
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=min_size,
            max_size=max_size,
            open=False,
            configure=self._configure,
            # One cheap round trip per checkout replaces connections that died
            # while idle (database restart, cut connection) before they fail a commit.
            check=AsyncConnectionPool.check_connection,
            timeout=self.command_timeout,
            reconnect_timeout=60.0,
            name="eventwire",
        )
        # Operations abandoned after their timeout, still cancelling in the background.
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._subscribers: list[Callable[[Kind, int], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._cursor_key = b""

    def __repr__(self) -> str:
        return f"PostgresStore({self._redact(self._url)!r}, write_method={self.write_method!r})"

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        # Migrate on a connection of our own first: its failure says why (auth,
        # no such database...), where a pool would only report a timeout.
        async def migrate() -> None:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                while await self._migrate_one(conn):
                    pass
                await conn.execute(
                    "INSERT INTO eventwire_meta (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (_CURSOR_KEY, secrets.token_bytes(32)),
                )
                cur = await conn.execute(
                    "SELECT value FROM eventwire_meta WHERE key = %s", (_CURSOR_KEY,)
                )
                row = await cur.fetchone()
                assert row is not None  # noqa: S101 - inserted just above
                self._cursor_key = bytes(row[0])
            finally:
                await conn.close()

        await self._bounded(migrate, timeout=max(60.0, self.command_timeout))
        try:
            await self._pool.open(wait=True, timeout=self.command_timeout)
        except psycopg.Error as exc:
            await self._pool.close(timeout=1.0)
            raise self._error(exc, "cannot fill the connection pool") from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for task in list(self._abandoned):
            task.cancel()
        if self._abandoned:
            await asyncio.wait(list(self._abandoned), timeout=self.command_timeout)
        await self._pool.close(timeout=self.command_timeout)

    @staticmethod
    async def _configure(conn: Conn) -> None:
        await conn.execute(_CREATE_STAGING)

    @staticmethod
    async def _migrate_one(conn: Conn) -> bool:
        """Apply the next pending migration; False when none is left."""
        async with conn.transaction():
            # Transaction-scoped: released by COMMIT or ROLLBACK, also if we die.
            await conn.execute("SET LOCAL statement_timeout = 0")  # DDL may take long
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS eventwire_schema ("
                " version int PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM eventwire_schema")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            newest = MIGRATIONS[-1].version
            if current > newest:
                raise StoreError(
                    f"postgresql: the schema has version {current} (eventwire_schema), newer "
                    f"than this eventwire's ({newest}): a newer eventwire migrated it; run that "
                    "version, or point --store at another database or schema"
                )
            pending = [m for m in MIGRATIONS if m.version > current]
            if not pending:
                return False
            migration = pending[0]
            await conn.execute(migration.postgres.encode())
            await conn.execute(
                "INSERT INTO eventwire_schema (version) VALUES (%s)", (migration.version,)
            )
            return True

    # -- writes --------------------------------------------------------------------

    async def commit(
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        if self._gone:
            raise StoreGone(self._gone)
        if not any(events) and not alerts:
            return CommitResult([0] * len(events), [])
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                result = await self._bounded(lambda: self._commit(events, alerts))
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
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        inserted = [0] * len(events)
        # The first occurrence of a key in the batch is the one stored, as if the
        # groups were inserted in order; later ones are duplicates.
        unique: dict[tuple[str, str], tuple[int, EventRow]] = {}
        for group, rows in enumerate(events):
            for row in rows:
                unique.setdefault((row.tenant, row.event_id), (group, row))
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
            if alerts:
                # Delivered to listeners at COMMIT, and only if it commits.
                await conn.execute(_NOTIFY, ("eventwire_alerts",))
        return CommitResult(inserted, tracking_ids)

    @staticmethod
    async def _copy_events(
        conn: Conn, rows: Iterable[tuple[int, EventRow]], *, single: bool
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
        conn: Conn, rows: Iterable[tuple[int, EventRow]], *, single: bool
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

    # -- reads ---------------------------------------------------------------------

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None:
        async def run() -> AlertRow | None:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_ALERT_BY_ID, (tenant, tracking_id))
                row = await cur.fetchone()
            return None if row is None else AlertRow(*row)

        return await self._bounded(run)

    async def count_events(self, tenant: str, query: EventQuery) -> int:
        where = [sql.SQL("tenant = %s")]
        params: list[str | int] = [tenant]
        if query.event_name:
            where.append(sql.SQL("event_name = %s"))
            params.append(query.event_name)
        if query.user_id:
            where.append(sql.SQL("user_id = %s"))
            params.append(query.user_id)
        if query.start:
            where.append(sql.SQL("ts >= %s"))
            params.append(query.start)
        if query.end:
            where.append(sql.SQL("ts < %s"))
            params.append(query.end)
        statement = sql.SQL("SELECT count(*) FROM events WHERE {}").format(
            sql.SQL(" AND ").join(where)
        )

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
        self, after: Position, tenant: str, query: EventQuery, limit: int
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
        return await self._snapshot_position(_WATERMARK)

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
        conditions: list[sql.Composable] = [sql.SQL("tenant = %s")]
        params.append(tenant)
        if query.event_name:
            conditions.append(sql.SQL("event_name = %s"))
            params.append(query.event_name)
        _time_range(conditions, params, query.start, query.end)
        statement = sql.SQL(
            "SELECT {bucket} AS b, {group} AS g, count(*) AS n,"
            " count(DISTINCT nullif(user_id, '')) FROM events WHERE {conditions}"
            " GROUP BY b, g ORDER BY b, n DESC, g LIMIT %s"
        ).format(bucket=bucket, group=group, conditions=sql.SQL(" AND ").join(conditions))
        params.append(query.limit)

        async def run() -> list[Aggregate]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                rows = await cur.fetchall()
            return [Aggregate(int(b), str(g), int(n), int(u)) for b, g, n, u in rows]

        return await self._bounded(run)

    # -- retention -------------------------------------------------------------------

    async def purge(self, kind: Kind, received_before: int, limit: int) -> int:
        table = sql.Identifier(kind)
        oldest = sql.SQL(
            "SELECT xid::text::int8 AS position_xid, seq, received_at FROM {table}"
            " WHERE xid < {watermark} ORDER BY xid, seq LIMIT %s"
        ).format(table=table, watermark=sql.SQL(_WATERMARK))
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

    # -- change notifications -----------------------------------------------------------

    def subscribe(self, callback: Callable[[Kind, int], None]) -> None:
        self._subscribers.append(callback)
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="eventwire-pg-listener"
            )

    def _publish(self, kind: Kind, xid: int = 0) -> None:
        for callback in self._subscribers:
            callback(kind, xid)

    async def _listen(self) -> None:
        """Hold a LISTEN connection of its own; reconnect whenever it breaks."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except (psycopg.Error, OSError) as exc:
                log.warning("cannot LISTEN for new rows: %s", self._redact(str(exc)))
                await asyncio.sleep(_LISTEN_RETRY)
                continue
            try:
                async with conn:
                    for channel in _CHANNELS.values():
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    # Anything may have committed while no one listened.
                    for kind in _CHANNELS:
                        self._publish(kind)
                    async for note in conn.notifies():
                        changed = _KINDS.get(note.channel)
                        if changed is not None:
                            xid = int(note.payload) if note.payload.isdigit() else 0
                            self._publish(changed, xid)
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost: %s", self._redact(str(exc)))
                await asyncio.sleep(_LISTEN_RETRY)

    async def check(self) -> None:
        async def run() -> None:
            async with self._pool.connection() as conn:
                # After a failover, a replica may be reachable but read-only.
                cur = await conn.execute("SELECT pg_is_in_recovery()")
                row = await cur.fetchone()
            if row is None or row[0]:
                raise StoreUnavailable("postgresql: the database is read-only (in recovery)")

        if self._gone:
            raise StoreGone(self._gone)
        try:
            await self._bounded(run)
        except StoreUnavailable:
            await self._raise_if_dropped()
            raise

    async def verify(self) -> None:
        # Anything more would be a round trip; a dropped database is found by
        # the first write that fails and the probe that follows it (check).
        if self._gone:
            raise StoreGone(self._gone)

    async def _raise_if_dropped(self) -> None:
        """Raise :class:`StoreGone` if a fresh connection says the database does not exist.

        The pool only reports that it timed out; a connection of our own tells
        a dropped database from a server that is merely down or unreachable.
        """
        try:
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(self._conninfo, autocommit=True),
                self.command_timeout + _CLIENT_GRACE,
            )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if not _NO_DATABASE.search(str(exc)):
                return
            self._gone = (
                f"postgresql: the database {self._database!r} no longer exists (dropped while "
                "the server was using it); recreate it and restart the server, or point "
                "--store at another database"
            )
            raise StoreGone(self._gone) from None
        await conn.close()

    # -- plumbing ------------------------------------------------------------------

    async def _bounded(
        self, operation: Callable[[], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """Run ``operation`` within the command timeout, with errors mapped to ours."""
        # A little past statement_timeout, so that a responsive server's own
        # cancellation (clean error, connection reusable) normally comes first.
        timeout = self.command_timeout + _CLIENT_GRACE if timeout is None else timeout

        async def run() -> T:
            return await operation()

        task = asyncio.ensure_future(run())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            # Not awaited: psycopg's cancellation may itself wait for the
            # unresponsive server; the pool discards the connection afterwards.
            self._abandon(task)
            raise StoreUnavailable(f"postgresql: no answer within {timeout:g}s")
        try:
            return task.result()
        except StoreError:
            raise
        except (psycopg.Error, OSError) as exc:
            raise self._error(exc) from exc

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was already reported as a timeout

    def _error(self, exc: BaseException, doing: str = "") -> StoreError:
        text = self._redact(str(exc).strip()) or type(exc).__name__
        message = f"postgresql: {doing + ': ' if doing else ''}{text}"
        # Connection trouble, timeouts, admin shutdown, too many connections,
        # disk full, deadlocks (class 08, 53, 57, 40...): all worth retrying later.
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError):
            err: StoreError = StoreUnavailable(message)
        else:
            err = StoreError(message)
        err.__cause__ = exc
        return err

    def _redact(self, text: str) -> str:
        return redact(text, self._password)


def alert_page_query(
    after: Position, where: AlertFilter, limit: int
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters of :meth:`PostgresStore.read_alerts`."""
    conditions: list[sql.Composable] = [sql.SQL(_POSITION_ROW)]
    params: list[Any] = [after.xid, after.seq]
    for column, value in (
        ("tenant", where.tenant),
        ("device_id", where.device_id or None),
        ("alert_type", where.alert_type or None),
    ):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if where.min_severity:
        conditions.append(sql.SQL("severity >= %s"))
        params.append(where.min_severity)
    _time_range(conditions, params, where.start, where.end)
    return _page_statement("alerts", _ALERT_COLUMNS, conditions), [*params, limit]


def event_page_query(
    after: Position, tenant: str, query: EventQuery, limit: int
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters of :meth:`PostgresStore.read_events`."""
    # concat(): the same comparison, but no index on tenant or event_name can
    # serve it, so the planner walks events_by_position in order. Taking
    # events_by_name_ts and sorting would re-read every matching row per page.
    conditions: list[sql.Composable] = [sql.SQL(_POSITION_ROW), sql.SQL("concat(tenant) = %s")]
    params: list[Any] = [after.xid, after.seq, tenant]
    if query.event_name:
        conditions.append(sql.SQL("concat(event_name) = %s"))
        params.append(query.event_name)
    _time_range(conditions, params, query.start, query.end)
    columns = "tenant, event_id, event_name, user_id, ts, received_at, properties::text"
    return _page_statement("events", columns, conditions), [*params, limit]


def _page_statement(table: str, columns: str, conditions: list[sql.Composable]) -> sql.Composed:
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
        watermark=sql.SQL(_WATERMARK),
        columns=sql.SQL(columns),
        table=sql.Identifier(table),
        conditions=sql.SQL(" AND ").join(conditions),
    )


def _time_range(conditions: list[sql.Composable], params: list[Any], start: int, end: int) -> None:
    if start:
        conditions.append(sql.SQL("ts >= %s"))
        params.append(start)
    if end:
        conditions.append(sql.SQL("ts < %s"))
        params.append(end)


def _through(
    after: Position, page: Sequence[tuple[Position, object]], limit: int, watermark: int
) -> Position:
    """How far a page read from ``after`` settles: its last row when it is full,
    else every transaction older than the watermark."""
    if len(page) >= limit:
        return page[-1][0]
    return max(after, Position(watermark, 0))


def _split_params(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without eventwire's own query parameters, and those parameters."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, {}
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OUR_PARAMS}
    rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k not in _OUR_PARAMS])
    return (f"{base}?{rest}" if rest else base), ours


def _password(url: str) -> str:
    try:
        return str(psycopg.conninfo.conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:
        return ""
