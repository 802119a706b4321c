"""FaultProxy against a real echo server on loopback: each fault is observable on the socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from eventwire.testing import FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def proxy(echo: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(echo) as p:
        yield p


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _roundtrip(address: str, payload: bytes = b"ping") -> bytes:
    reader, writer = await _connect(address)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()


async def test_forwards_bytes_and_counts_connections(proxy: FaultProxy) -> None:
    assert proxy.accepted == 0
    assert await _roundtrip(proxy.address, b"hello") == b"hello"
    assert await _roundtrip(proxy.address, b"x" * 300_000) == b"x" * 300_000
    assert proxy.accepted == 2
    assert proxy.address.startswith("127.0.0.1:")
    assert not proxy.address.endswith(":0")


async def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.set_faults(latency=0.1)
    started = time.monotonic()
    assert await _roundtrip(proxy.address) == b"ping"
    # One chunk out, one back: at least twice the one-way latency.
    assert time.monotonic() - started >= 0.2


async def test_reset_connections_sends_rst(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy.address)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    assert proxy.open_connections == 1
    proxy.reset_connections()
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        # A reset peer either errors the read or ends the stream at once.
        await asyncio.wait_for(reader.readexactly(1), 5)
    writer.close()
    # New connections work after a reset.
    assert await _roundtrip(proxy.address) == b"ping"


async def test_drop_cuts_the_connection(proxy: FaultProxy) -> None:
    proxy.set_faults(drop=1.0)
    reader, writer = await _connect(proxy.address)
    writer.write(b"doomed")
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(6), 5)
    writer.close()


async def test_blackhole_swallows_then_recovers(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy.address)
    proxy.set_faults(blackhole=True)
    writer.write(b"lost")
    await writer.drain()
    # Absence can only be shown with a bound; the bound is generous, not a race.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)
    proxy.set_faults()
    writer.write(b"kept")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"kept"
    writer.close()


async def test_bandwidth_cap_slows_transfer(proxy: FaultProxy) -> None:
    proxy.set_faults(bandwidth=400_000)
    started = time.monotonic()
    payload = b"y" * 100_000
    assert await _roundtrip(proxy.address, payload) == payload
    # 100 kB at 400 kB/s takes 0.25 s; the two directions overlap (echo
    # answers while later chunks still flow out), so only one is a lower bound.
    assert time.monotonic() - started >= 0.25


async def test_set_upstream_redirects_new_connections(proxy: FaultProxy) -> None:
    async def other(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        writer.write(b"OTHR")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(other, "127.0.0.1", 0)
    try:
        proxy.set_upstream(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        assert await _roundtrip(proxy.address) == b"OTHR"
    finally:
        server.close()
        await server.wait_closed()


async def test_dead_upstream_resets_client() -> None:
    # Grab a free port and release it, so nothing listens there.
    probe = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with FaultProxy(f"127.0.0.1:{port}") as proxy:
        reader, writer = await _connect(proxy.address)
        writer.write(b"x")
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()
        assert proxy.accepted == 1


async def test_stop_closes_open_connections(echo: str) -> None:
    proxy = FaultProxy(echo)
    with pytest.raises(RuntimeError):
        _ = proxy.address
    await proxy.start()
    reader, writer = await _connect(proxy.address)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    await proxy.stop()
    assert proxy.open_connections == 0
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 5)
    writer.close()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        FaultProxy("nonsense")
    proxy = FaultProxy("127.0.0.1:1")
    with pytest.raises(ValueError, match="probability"):
        proxy.set_faults(drop=2.0)
    with pytest.raises(ValueError, match="bandwidth"):
        proxy.set_faults(bandwidth=0)
    with pytest.raises(ValueError, match="negative"):
        proxy.set_faults(latency=-1)


async def test_reset_drops_bytes_held_back_by_latency(echo: str) -> None:
    proxy = FaultProxy(echo)
    await proxy.start()
    reader, writer = await _connect(proxy.address)
    writer.write(b"a")
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"  # the link is up
    proxy.set_faults(latency=60)
    writer.write(b"slow")
    await writer.drain()
    started = time.monotonic()
    # Would wait out the 60 s of latency if held bytes kept the connection's tasks alive.
    await asyncio.wait_for(proxy.stop(), 5)
    assert time.monotonic() - started < 5
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(4), 5)
    writer.close()


def test_testing_switch_is_exported() -> None:
    from eventwire import client, testing

    with testing.no_backoff():
        assert client.is_testing()
    assert not client.is_testing()
