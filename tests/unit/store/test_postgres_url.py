"""open_store picks the PostgreSQL adapter and reads eventwire's own URL parameters."""

from __future__ import annotations

import pytest

from eventwire.store import open_store
from eventwire.store.postgres import PostgresStore


def test_open_store_selects_postgres_and_reads_our_url_parameters() -> None:
    store = open_store(
        "postgresql://app@db.example:5432/events?sslmode=disable&command_timeout=2.5"
        "&pool_min_size=0&pool_max_size=3&write_method=insert"
    )
    assert isinstance(store, PostgresStore)
    assert store.command_timeout == 2.5
    assert store.write_method == "insert"
    assert PostgresStore("postgresql://app@db/events").write_method == "auto"
    assert "command_timeout" not in repr(store)
    assert "sslmode=disable" in repr(store)
    with pytest.raises(ValueError, match="pool_min_size"):
        PostgresStore("postgresql://app@db/events?pool_min_size=5&pool_max_size=2")
    with pytest.raises(ValueError, match="invalid PostgreSQL URL") as caught:
        PostgresStore("postgresql://app:hunter2@db/events?no_such_parameter=1")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="write_method"):
        PostgresStore("postgresql://app@db/events", write_method="bulk")  # type: ignore[arg-type]
