"""The storage boundary: what the services need from a database, and nothing else.

Adapters (SQLite, PostgreSQL) implement :class:`Store`; they hold no business
rules. Every write goes through :meth:`Store.commit`, which the ingest pipeline
calls with many requests' rows at once (group commit): one transaction, and the
caller learns per request what was new and what was a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class EventRow(NamedTuple):
    """One event, in the column order of the ``events`` table."""

    tenant: str
    event_id: str
    event_name: str
    user_id: str
    timestamp: int
    """Unix epoch milliseconds."""
    received_at: int
    """Unix epoch milliseconds at which the server received the event."""
    properties: str
    """The properties map as a JSON object."""


class AlertRow(NamedTuple):
    """One alert, in the column order of the ``alerts`` table."""

    tracking_id: str
    tenant: str
    device_id: str
    alert_type: str
    timestamp: int
    received_at: int
    idempotency_key: str | None


class EventQuery(NamedTuple):
    """Filters for counting events; empty strings and zeros match everything."""

    event_name: str = ""
    user_id: str = ""
    start: int = 0
    """Inclusive lower bound on ``timestamp`` (ms); 0 = unbounded."""
    end: int = 0
    """Exclusive upper bound on ``timestamp`` (ms); 0 = unbounded."""


class CommitResult(NamedTuple):
    inserted: list[int]
    """Per event group passed to :meth:`Store.commit`: how many rows were new."""
    tracking_ids: list[str]
    """Per alert: the stored tracking id (the first one's, for a repeated idempotency key)."""


class StoreError(Exception):
    """A storage operation failed for a reason that retrying will not fix."""


class StoreUnavailable(StoreError):
    """Storage cannot serve right now (down, unreachable, disk full); retrying later may work."""


class StoreGone(StoreUnavailable):
    """The database is no longer the one this server opened: its file was deleted or
    replaced, or the database was dropped. Writing on would acknowledge data into
    nothing, so the store refuses every write until the server is restarted on a
    good store; the message names the file or database, for the operator.
    """


class Store(Protocol):
    """Durable storage for events and alerts. All methods are safe to call concurrently."""

    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""

    async def close(self) -> None:
        """Release connections; pending work must already have been committed."""

    async def commit(
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        """Store everything in one transaction, durably, or nothing at all.

        Events whose ``(tenant, event_id)`` already exists are skipped and counted
        as duplicates; an alert whose ``(tenant, idempotency_key)`` already exists is
        not stored again and its first ``tracking_id`` is returned.
        """

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None: ...

    async def count_events(self, tenant: str, query: EventQuery) -> int: ...

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless storage can serve reads and writes."""

    async def verify(self) -> None:
        """Raise :class:`StoreUnavailable` if storage is known to be unusable, cheaply.

        Called every second or so while serving, so it must cost next to nothing:
        no transaction, no round trip (SQLite: three metadata syscalls).
        """
