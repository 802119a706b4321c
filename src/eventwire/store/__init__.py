"""Durable storage behind one Protocol; adapters are chosen by URL."""

from __future__ import annotations

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
    EventValues,
    Kind,
    Position,
    Store,
    StoredAlert,
    StoredEvent,
    StoreError,
    StoreGone,
    StoreUnavailable,
)

__all__ = [
    "ORIGIN",
    "Aggregate",
    "AlertFilter",
    "AlertPage",
    "AlertRow",
    "CommitResult",
    "EventAggregation",
    "EventPage",
    "EventQuery",
    "EventRow",
    "EventValues",
    "Kind",
    "Position",
    "Store",
    "StoreError",
    "StoreGone",
    "StoreUnavailable",
    "StoredAlert",
    "StoredEvent",
    "open_store",
]


def open_store(url: str, *, sqlite_synchronous: str = "full", exclusive: bool = True) -> Store:
    """The store for ``url``, not yet opened.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` follow the
    SQLAlchemy convention; ``postgresql://user@host:port/db`` selects PostgreSQL.
    ``exclusive=False`` skips SQLite's one-server-per-file lock, for processes
    whose parent holds it (``--workers``).
    """
    if url.startswith("sqlite:///"):
        from eventwire.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise ValueError("sqlite URL needs a path: sqlite:///eventwire.db")
        return SQLiteStore(path, synchronous=sqlite_synchronous, exclusive=exclusive)
    if url.startswith(("postgresql://", "postgres://")):
        from eventwire.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(
        f"unsupported store URL {redact(url)!r}; use sqlite:///PATH or postgresql://..."
    )
