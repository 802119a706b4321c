"""The destinations' bookkeeping on SQLite (see :mod:`eventwire.store.destinations`):
small writes through the one writer, reads on the reader connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Final

from eventwire.store import destinations as sql
from eventwire.store.base import DeadLetter, DestinationState, Kind, Position
from eventwire.store.sqlite.reads import TABLES
from eventwire.store.sqlite.writes import Writes

_SQL: Final = sql.statements("?")


class Destinations(Writes):
    async def claim_destination(
        self, name: str, owner: str, now_ms: int, lease_ms: int, start: tuple[Position, Position]
    ) -> DestinationState:
        return await self._transaction(_claim, name, start, (owner, now_ms, lease_ms))

    async def save_destination(
        self,
        name: str,
        owner: str,
        generation: int,
        positions: tuple[Position, Position],
        lease_until_ms: int,
    ) -> bool:
        params = sql.save_params(name, owner, generation, positions, lease_until_ms)
        return await self._transaction(_changed, _SQL["save"], params) == 1

    async def release_destination(self, name: str, owner: str) -> None:
        await self._transaction(_changed, _SQL["release"], (name, owner))

    async def destination_states(self) -> list[DestinationState]:
        rows = await self._on(self._read_thread, self._select, _SQL["states"], ())
        return [sql.state_of(r) for r in rows]

    async def control_destination(
        self,
        name: str,
        *,
        paused: bool | None = None,
        positions: tuple[Position | None, Position | None] = (None, None),
    ) -> DestinationState | None:
        return await self._transaction(_control, sql.control_params(name, paused, positions))

    async def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        now = int(time.time() * 1000)
        rows = [sql.letter_params(letter, now) for letter in letters]
        await self._transaction(_many, _SQL["add_letter"], rows)

    async def dead_letters(self, destination: str, after_id: int, limit: int) -> list[DeadLetter]:
        params = (destination, after_id, limit)
        rows = await self._on(self._read_thread, self._select, _SQL["letters"], params)
        return [sql.letter_of(r) for r in rows]

    async def drop_dead_letters(self, destination: str, ids: Sequence[int]) -> int:
        marks = ", ".join("?" * len(ids)) or "NULL"
        statement = f"DELETE FROM eventwire_dead_letters WHERE destination = ? AND id IN ({marks})"  # noqa: S608
        return await self._transaction(_changed, statement, (destination, *ids))

    async def backlog(self, kind: Kind, after: Position, cap: int) -> tuple[int, int]:
        table = TABLES[kind]
        statement = (
            f"SELECT count(*), min(received_at) FROM (SELECT received_at FROM {table}"  # noqa: S608
            " WHERE seq > ? ORDER BY seq LIMIT ?)"
        )
        rows = await self._on(self._read_thread, self._select, statement, (after.seq, cap))
        count, oldest = rows[0]
        return int(count), int(oldest or 0)

    def _select(self, statement: str, params: Sequence[Any]) -> list[Any]:
        self._refuse_if_faulted()
        return self._require(self._reader).execute(statement, params).fetchall()


def _claim(
    conn: sqlite3.Connection,
    name: str,
    start: tuple[Position, Position],
    lease: tuple[str, int, int],
) -> DestinationState:
    owner, now_ms, lease_ms = lease
    conn.execute(_SQL["create"], sql.create_params(name, start))
    conn.execute(_SQL["claim"], sql.claim_params(name, owner, now_ms, lease_ms))
    return sql.state_of(conn.execute(_SQL["state"], (name,)).fetchone())


def _control(conn: sqlite3.Connection, params: tuple[Any, ...]) -> DestinationState | None:
    if conn.execute(_SQL["control"], params).rowcount != 1:
        return None
    return sql.state_of(conn.execute(_SQL["state"], (params[-1],)).fetchone())


def _changed(conn: sqlite3.Connection, statement: str, params: Sequence[Any]) -> int:
    return int(conn.execute(statement, params).rowcount)


def _many(conn: sqlite3.Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(statement, rows)
