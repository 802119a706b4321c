"""Several replicas behind one target: round robin, and unhealthy replicas skipped."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest

import eventwire.client as ec
from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.runtime.server import Server
from eventwire.testing import running_server


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[Server]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                running_server(
                    store=f"sqlite:///{tmp_path / f'r{i}.db'}", store_probe_interval=0.05
                )
            )
            for i in range(3)
        ]


async def stored(server: Server, name: str) -> int:
    async with grpc.aio.insecure_channel(server.address) as ch:
        reply = await analytics_pb2_grpc.AnalyticsServiceStub(ch).CountEvents(
            analytics_pb2.CountEventsRequest(event_name=name)
        )
    return reply.count


async def test_calls_are_spread_over_every_replica(replicas: list[Server]) -> None:
    async with ec.AnalyticsClient(ec.targets(*(r.address for r in replicas)), timeout=5) as client:
        for _ in range(30):
            await client.track_event("spread", "u")
    counts = [await stored(r, "spread") for r in replicas]
    assert sum(counts) == 30
    assert min(counts) >= 5, counts


async def test_a_replica_whose_storage_fails_is_skipped_until_it_recovers(
    replicas: list[Server],
) -> None:
    sick = replicas[0]
    db = sick.config.store.removeprefix("sqlite:///")
    async with ec.AnalyticsClient(ec.targets(*(r.address for r in replicas)), timeout=15) as client:
        for _ in range(6):
            await client.track_event("warm", "u")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: commits fail
        try:
            # Calls keep succeeding: the one that reaches the sick replica fails
            # there with UNAVAILABLE and is retried on another.
            for _ in range(6):
                await client.track_event("during", "u")
            before = await stored(sick, "during")
            for _ in range(12):
                await client.track_event("skipped", "u")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # Health-checked out of rotation: nothing more reached it.
        assert await stored(sick, "skipped") == 0
        assert await stored(sick, "during") == before
        # Back to SERVING once its storage probe succeeds; then it takes calls again.
        deadline = time.monotonic() + 20
        while await stored(sick, "after") == 0:
            assert time.monotonic() < deadline, "the recovered replica got no calls"
            await client.track_event("after", "u")
    total = sum([await stored(r, n) for r in replicas for n in ("during", "skipped")])
    assert total == 18
