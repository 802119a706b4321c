"""PostgreSQL-only behaviour: migrators racing, timeouts, outages, secrets in errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from eventwire.store import EventQuery, EventRow, StoreUnavailable, open_store
from eventwire.store.migrations import MIGRATIONS
from eventwire.store.postgres import _MIGRATION_LOCK, PostgresStore
from eventwire.testing import FaultProxy
from tests.conftest import pg_rows

NOW = 1_750_000_000_000


def ev(event_id: str) -> EventRow:
    return EventRow("acme", event_id, "signup", "u1", NOW, NOW, "{}")


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def proxied(url: str, address: str) -> str:
    return url.replace("127.0.0.1:5432", address, 1)


# -- configuration --------------------------------------------------------------------


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


# -- migrations -----------------------------------------------------------------------


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


# -- unreachable and failing databases ------------------------------------------------


async def test_silent_server_gives_unavailable_promptly(silent_port: int) -> None:
    store = PostgresStore(f"postgresql://app@127.0.0.1:{silent_port}/db", command_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    # libpq's smallest connect_timeout is 2 s.
    assert time.monotonic() - started < 8


async def test_operations_on_a_closed_store_are_unavailable(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.commit([[ev("a")]], [])
    with pytest.raises(StoreUnavailable):
        await store.check()


async def test_blackholed_connection_times_out_then_recovers(pg_url: str) -> None:
    async with FaultProxy("127.0.0.1:5432") as proxy:
        store = PostgresStore(proxied(pg_url, proxy.address), command_timeout=1)
        await store.open()
        try:
            assert (await store.commit([[ev("before")]], [])).inserted == [1]

            proxy.set_faults(blackhole=True)
            for operation in (
                store.commit([[ev("during")]], []),
                store.count_events("acme", EventQuery()),
                store.check(),
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await operation
                assert time.monotonic() - started < 5

            proxy.set_faults()
            proxy.reset_connections()

            async def healthy() -> bool:
                try:
                    await store.check()
                except StoreUnavailable:
                    return False
                return True

            await poll(healthy, "the store to recover", timeout=20)
            result = await store.commit([[ev("before")], [ev("during")], [ev("after")]], [])
            # "during" was never acknowledged; whether it landed or not, it is stored once.
            assert result.inserted[0] == 0
            assert result.inserted[2] == 1
            assert await store.count_events("acme", EventQuery()) == 3
        finally:
            await store.close()


async def test_reset_connections_fail_one_operation_at_most(pg_url: str) -> None:
    async with FaultProxy("127.0.0.1:5432") as proxy:
        store = PostgresStore(proxied(pg_url, proxy.address), command_timeout=2)
        await store.open()
        try:
            proxy.reset_connections()
            # Pooled connections are checked on checkout, so the dead ones are
            # replaced instead of failing the commit.
            assert (await store.commit([[ev("a")]], [])).inserted == [1]
        finally:
            await store.close()


# -- replicas racing on one key -------------------------------------------------------


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


async def test_a_commit_blocked_past_the_timeout_is_unavailable_not_stuck(pg_url: str) -> None:
    store = PostgresStore(pg_url, command_timeout=1)
    await store.open()
    try:
        with psycopg.connect(pg_url) as other:
            other.execute(
                "INSERT INTO events (tenant, event_id, event_name, user_id, ts, received_at,"
                " properties) VALUES ('acme', 'x', 'signup', 'u1', 1, 1, '{}')"
            )
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="statement timeout"):
                await store.commit([[ev("x")]], [])
            assert time.monotonic() - started < 5
            other.execute("ROLLBACK")
        # The server cancelled the statement itself, so the connection is reusable.
        assert (await store.commit([[ev("x")]], [])).inserted == [1]
    finally:
        await store.close()
