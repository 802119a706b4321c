"""The destinations' bookkeeping on PostgreSQL (see :mod:`eventwire.store.destinations`).

The lease is a row with an expiry, taken and extended by conditional updates,
so every replica agrees on its holder whatever connection it uses; the holder
extends it with every save, and another replica takes it once it lapsed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from psycopg import sql as pgsql

from eventwire.store import destinations as sql
from eventwire.store.base import DeadLetter, DestinationState, Kind, Position
from eventwire.store.postgres.connection import PostgresConnection
from eventwire.store.postgres.reads import WATERMARK

_SQL: Final = sql.statements("%s", "::int8")


class Destinations(PostgresConnection):
    async def claim_destination(
        self, name: str, owner: str, now_ms: int, lease_ms: int, start: tuple[Position, Position]
    ) -> DestinationState:
        async def run() -> DestinationState:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(_SQL["create"], sql.create_params(name, start))
                await conn.execute(_SQL["claim"], sql.claim_params(name, owner, now_ms, lease_ms))
                cur = await conn.execute(_SQL["state"], (name,))
                return sql.state_of(await _one(cur))

        return await self._bounded(run)

    async def save_destination(
        self,
        name: str,
        owner: str,
        generation: int,
        positions: tuple[Position, Position],
        lease_until_ms: int,
    ) -> bool:
        params = sql.save_params(name, owner, generation, positions, lease_until_ms)
        return await self._changed(_SQL["save"], params) == 1

    async def release_destination(self, name: str, owner: str) -> None:
        await self._changed(_SQL["release"], (name, owner))

    async def destination_states(self) -> list[DestinationState]:
        return [sql.state_of(r) for r in await self._rows(_SQL["states"], ())]

    async def control_destination(
        self,
        name: str,
        *,
        paused: bool | None = None,
        positions: tuple[Position | None, Position | None] = (None, None),
    ) -> DestinationState | None:
        async def run() -> DestinationState | None:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    _SQL["control"], sql.control_params(name, paused, positions)
                )
                if cur.rowcount != 1:
                    return None
                cur = await conn.execute(_SQL["state"], (name,))
                return sql.state_of(await _one(cur))

        return await self._bounded(run)

    async def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        now = int(time.time() * 1000)
        rows = [sql.letter_params(letter, now) for letter in letters]

        async def run() -> None:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.cursor().executemany(_SQL["add_letter"], rows)

        await self._bounded(run)

    async def dead_letters(self, destination: str, after_id: int, limit: int) -> list[DeadLetter]:
        rows = await self._rows(_SQL["letters"], (destination, after_id, limit))
        return [sql.letter_of(r) for r in rows]

    async def drop_dead_letters(self, destination: str, ids: Sequence[int]) -> int:
        statement = "DELETE FROM eventwire_dead_letters WHERE destination = %s AND id = ANY(%s)"
        return await self._changed(statement, (destination, list(ids)))

    async def backlog(self, kind: Kind, after: Position, cap: int) -> tuple[int, int]:
        statement = pgsql.SQL(
            "SELECT count(*), min(received_at) FROM (SELECT received_at FROM {table}"
            " WHERE (xid, seq) > (%s::text::xid8, %s) AND xid < {watermark}"
            " ORDER BY xid, seq LIMIT %s) r"
        ).format(table=pgsql.Identifier(kind), watermark=pgsql.SQL(WATERMARK))
        rows = await self._rows(statement, (after.xid, after.seq, cap))
        return int(rows[0][0]), int(rows[0][1] or 0)

    async def _changed(self, statement: str, params: Sequence[Any]) -> int:
        async def run() -> int:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                return cur.rowcount

        return await self._bounded(run)

    async def _rows(self, statement: str | pgsql.Composed, params: Sequence[Any]) -> list[Any]:
        async def run() -> list[Any]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                return await cur.fetchall()

        return await self._bounded(run)


async def _one(cur: Any) -> Any:
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - the row was just created or updated
    return row
