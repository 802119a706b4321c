"""Stores under test: SQLite in a temporary file and the real PostgreSQL.

The PostgreSQL fixtures (``pg_database``, ``pg_url``) live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import pytest

from eventwire.store import EventRow, Store, open_store
from eventwire.store.postgres import PostgresStore, WriteMethod

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres-copy", "postgres-insert"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_store(kind: str, store_url: str) -> StoreFactory:
    """New, unopened store instances on the same storage (think: replicas)."""
    if kind == "sqlite":
        # Several stores share the file, as --workers processes do (whose
        # supervisor holds the one-server lock), so none takes it here.
        return lambda: open_store(store_url, exclusive=False)
    method: WriteMethod = "copy" if kind == "postgres-copy" else "insert"
    return lambda: PostgresStore(store_url, write_method=method)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


NOW: Final = 1_750_000_000_000
"""A fixed "now" (2025-06-15) for rows written straight into a store."""


def ev(event_id: str) -> EventRow:
    """A plain signup event of tenant acme."""
    return EventRow("acme", event_id, "signup", "u1", NOW, NOW, "{}")
