"""Retention never purges rows a stalled destination has not delivered, unless told to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.store.base import EventQuery, Position
from eventwire.testing import running_server
from tests.support.nats import free_port


async def track(address: str, count: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        events = [
            analytics_pb2.TrackEventRequest(event_name="e", event_id=f"e{i}") for i in range(count)
        ]
        ack = await stub.TrackEvents(analytics_pb2.EventBatch(sequence=1, events=events))
        assert ack.accepted == count


async def test_a_stalled_destination_keeps_its_rows_from_retention(tmp_path: Path) -> None:
    # Nothing listens on this port: the destination never delivers a row.
    stalled = f"stalled=nats://127.0.0.1:{free_port()}/S"
    async with running_server(
        store=f"sqlite:///{tmp_path / 'e.db'}",
        destinations=(stalled,),
        retention="1s",
        retention_interval=3600.0,
    ) as srv:
        await track(srv.address, 50)
        await asyncio.sleep(1.2)  # every row has expired
        assert await srv.retention.purge_once() == {"events": 0, "alerts": 0}
        assert await srv.store.count_events("", EventQuery()) == 50
        assert srv.destinations.statuses()[0].delivered == 0
        # A destination that is down never touches health: ingest goes on.
        async with grpc.aio.insecure_channel(srv.address) as channel:
            # grpcio-health-checking's stubs are typed for sync channels only.
            health: Any = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Once the destination has delivered some (moved here by hand), those may go.
        state = (await srv.store.destination_states())[0]
        assert state.events == Position(0, 0)
        await srv.store.control_destination("stalled", positions=(Position(0, 20), None))
        assert (await srv.retention.purge_once())["events"] == 20
        assert await srv.store.count_events("", EventQuery()) == 30


async def test_overriding_purges_undelivered_rows_and_counts_them(tmp_path: Path) -> None:
    stalled = f"stalled=nats://127.0.0.1:{free_port()}/S?carry=events"
    async with running_server(
        store=f"sqlite:///{tmp_path / 'e.db'}",
        destinations=(stalled,),
        retention="1s",
        retention_interval=3600.0,
        retention_overrides_destinations=True,
    ) as srv:
        await track(srv.address, 50)
        await asyncio.sleep(1.2)
        # SQLite spares the newest event (its rowid must not be handed out again).
        assert (await srv.retention.purge_once())["events"] == 49
        assert srv.retention.skipped["events"] == 49
        assert await srv.store.count_events("", EventQuery()) == 1
