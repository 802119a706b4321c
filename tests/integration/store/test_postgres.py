"""PostgreSQL-only behaviour: migrators racing, timeouts, outages, secrets in errors."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from eventwire.store import EventQuery, StoreUnavailable
from eventwire.store.migrations import MIGRATIONS
from eventwire.store.postgres import _MIGRATION_LOCK, PostgresStore
from tests.conftest import pg_rows
from tests.support.probes import poll
from tests.support.store import ev


async def test_passwords_never_appear_in_errors_or_repr() -> None:
    secret = "s3cr3t-Pa55"  # noqa: S105 - the point of the test
    refused = "127.0.0.1:1"  # nothing listens on port 1 on a test machine
    store = PostgresStore(f"postgresql://app:{secret}@{refused}/events", command_timeout=2)
    assert secret not in repr(store)
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    assert secret not in str(caught.value)
    assert "postgresql" in str(caught.value)
    kv = PostgresStore(f"host=127.0.0.1 port=1 password={secret} dbname=x", command_timeout=2)
    assert secret not in repr(kv)


async def test_replicas_starting_at_once_migrate_exactly_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert (await stores[0].commit([[ev("a")]], [])).inserted == [1]
        assert await stores[5].count_events("acme", EventQuery()) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    versions = pg_rows(pg_url, "SELECT version FROM eventwire_schema ORDER BY version")
    assert versions == [(m.version,) for m in MIGRATIONS]


async def test_migrators_wait_for_the_advisory_lock(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        store = PostgresStore(pg_url)
        opening = asyncio.create_task(store.open())

        async def waiting_on_lock() -> bool:
            rows = pg_rows(
                pg_url,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            return rows == [(1,)]

        await poll(waiting_on_lock, "the store to wait on the migration lock")
        assert not opening.done()
        holder.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    await asyncio.wait_for(opening, 10)
    try:
        assert (await store.commit([[ev("a")]], [])).inserted == [1]
    finally:
        await store.close()


async def test_operations_on_a_closed_store_are_unavailable(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.commit([[ev("a")]], [])
    with pytest.raises(StoreUnavailable):
        await store.check()


async def waiting_on_a_lock(url: str) -> bool:
    rows = pg_rows(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eventwire'"
        " AND wait_event_type = 'Lock' AND datname = current_database()",
    )
    return rows == [(1,)]


@pytest.mark.parametrize(("other_outcome", "expected"), [("COMMIT", [0]), ("ROLLBACK", [1])])
async def test_commit_waits_for_another_replicas_insert_of_the_same_event(
    pg_url: str, other_outcome: str, expected: list[int]
) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        with psycopg.connect(pg_url) as other:
            # Another replica inserted "x" and has not committed yet.
            other.execute(
                "INSERT INTO events (tenant, event_id, event_name, user_id, ts, received_at,"
                " properties) VALUES ('acme', 'x', 'signup', 'u1', 1, 1, '{}')"
            )
            committing = asyncio.create_task(store.commit([[ev("x")], [ev("y")]], []))
            await poll(lambda: waiting_on_a_lock(pg_url), "the commit to wait on the row lock")
            assert not committing.done()
            other.execute(other_outcome)
        result = await asyncio.wait_for(committing, 10)
        assert result.inserted == [*expected, 1]
        assert await store.count_events("acme", EventQuery()) == 2
    finally:
        await store.close()
