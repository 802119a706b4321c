"""The connection pool of a PostgreSQL store, its migrations, its timeouts and
error mapping: what the reads, writes and listener of :class:`PostgresStore` share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, TypeVar, cast

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from eventwire._redact import redact
from eventwire.store.base import Kind, StoreError, StoreGone, StoreUnavailable
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

_EVENT_COLUMNS: Final = (
    "tenant, event_id, event_name, user_id, ts, received_at, properties, plan_version, violations"
)
_STAGING: Final = "eventwire_staging"

# ON COMMIT DELETE ROWS empties it at every commit; it lives as long as the session.
_CREATE_STAGING: Final = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
        grp int4, tenant text, event_id text, event_name text, user_id text,
        ts int8, received_at int8, properties text, plan_version int8, violations text
    ) ON COMMIT DELETE ROWS
"""
_CURSOR_KEY: Final = "cursor_key"


class PostgresConnection:
    """The pool and the rules every operation follows (see :mod:`eventwire.store.postgres`)."""

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
        self._plan_watchers: list[Callable[[], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._cursor_key = b""

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

    def _publish(self, kind: Kind, xid: int = 0) -> None:
        for callback in self._subscribers:
            callback(kind, xid)

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
