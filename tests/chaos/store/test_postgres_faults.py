"""PostgreSQL that stops answering, drops connections or blocks: prompt UNAVAILABLE, recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from eventwire.store import EventQuery, StoreUnavailable
from eventwire.store.postgres import PostgresStore
from eventwire.testing import FaultProxy
from tests.chaos.store.postgres_route import rerouted, server_of
from tests.support.probes import poll
from tests.support.store import ev


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


async def test_silent_server_gives_unavailable_promptly(silent_port: int) -> None:
    store = PostgresStore(f"postgresql://app@127.0.0.1:{silent_port}/db", command_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    # libpq's smallest connect_timeout is 2 s.
    assert time.monotonic() - started < 8


async def test_blackholed_connection_times_out_then_recovers(pg_url: str) -> None:
    async with FaultProxy(server_of(pg_url)) as proxy:
        store = PostgresStore(rerouted(pg_url, proxy.address), command_timeout=1)
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
    async with FaultProxy(server_of(pg_url)) as proxy:
        store = PostgresStore(rerouted(pg_url, proxy.address), command_timeout=2)
        await store.open()
        try:
            proxy.reset_connections()
            # Pooled connections are checked on checkout, so the dead ones are
            # replaced instead of failing the commit.
            assert (await store.commit([[ev("a")]], [])).inserted == [1]
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
