"""Change notifications of :class:`~eventwire.store.postgres.PostgresStore`: a
LISTEN connection of its own, from any replica's commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg import sql

from eventwire.store.base import Kind
from eventwire.store.postgres.connection import PostgresConnection, log

_CHANNELS: Final[dict[Kind, str]] = {"alerts": "eventwire_alerts", "events": "eventwire_events"}
_KINDS: Final[dict[str, Kind]] = {channel: kind for kind, channel in _CHANNELS.items()}
_LISTEN_RETRY: Final = 1.0
_PLANS: Final = "eventwire_plans"
"""New tracking plan versions (:mod:`eventwire.store.postgres.plans`)."""


class Listen(PostgresConnection):
    # -- change notifications -----------------------------------------------------------

    def subscribe(self, callback: Callable[[Kind, int], None]) -> None:
        self._subscribers.append(callback)
        self._start_listening()

    def watch_plans(self, callback: Callable[[], None]) -> None:
        self._plan_watchers.append(callback)
        self._start_listening()

    def _start_listening(self) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="eventwire-pg-listener"
            )

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
                    for channel in (*_CHANNELS.values(), _PLANS):
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    # Anything may have committed while no one listened.
                    for kind in _CHANNELS:
                        self._publish(kind)
                    self._plans_noted()
                    async for note in conn.notifies():
                        if note.channel == _PLANS:
                            self._plans_noted()
                            continue
                        changed = _KINDS.get(note.channel)
                        if changed is not None:
                            xid = int(note.payload) if note.payload.isdigit() else 0
                            self._publish(changed, xid)
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost: %s", self._redact(str(exc)))
                await asyncio.sleep(_LISTEN_RETRY)

    def _plans_noted(self) -> None:
        for callback in self._plan_watchers:
            callback()
