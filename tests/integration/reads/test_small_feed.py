"""With a feed too small to hold even one alert, watchers get every alert once, in order.

Every watcher then reads from the store: the path a watcher takes when it
falls behind the feed's bytes. Writes and watches overlap, on both stores.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
import pytest

from eventwire.api import telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from eventwire.testing import running_server

ALERTS: Final = 120


@pytest.fixture(params=[0, 20_000])
async def small_feed_server(
    read_store: str, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    async with running_server(store=read_store, feed_max_bytes=request.param) as srv:
        yield srv


async def test_watchers_behind_a_tiny_feed_miss_nothing(small_feed_server: Server) -> None:
    # A device of its own: the PostgreSQL database holds other tests' alerts too.
    device = f"dev-{uuid.uuid4()}"
    async with grpc.aio.insecure_channel(small_feed_server.address) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)

        async def watch(request: telemetry_pb2.WatchAlertsRequest, count: int) -> list[str]:
            return [a.tracking_id for a in await alerts(request, count)]

        async def alerts(
            request: telemetry_pb2.WatchAlertsRequest, count: int
        ) -> list[telemetry_pb2.Alert]:
            call: Any = stub.WatchAlerts(request)
            got: list[telemetry_pb2.Alert] = []
            while len(got) < count:
                # Generous: on PostgreSQL, rows wait for any older open transaction
                # in the database (other tests' too) before they are read.
                got.append(await asyncio.wait_for(call.read(), 60))
            call.cancel()
            return got

        async def report(n: int) -> str:
            # Sizes vary, so the feed drops alerts at every step.
            reply = await stub.ReportAlert(
                telemetry_pb2.AlertRequest(
                    device_id=device,
                    alert_type=("heat", "cold", "wind")[n % 3],
                    message="m" * (n * 97 % 4096),
                ),
                timeout=10,
            )
            return reply.tracking_id

        first = [await report(n) for n in range(ALERTS // 2)]
        seen = await alerts(
            telemetry_pb2.WatchAlertsRequest(device_id=device, from_start=True), len(first)
        )
        assert [a.tracking_id for a in seen] == first
        # A watcher that is live from the end of the first half: a cursor, not a race.
        mine = telemetry_pb2.WatchAlertsRequest(device_id=device, after=seen[-1].cursor)
        live = asyncio.create_task(watch(mine, ALERTS // 2))
        replay = asyncio.create_task(
            watch(telemetry_pb2.WatchAlertsRequest(device_id=device, from_start=True), ALERTS)
        )
        cold = telemetry_pb2.WatchAlertsRequest(
            device_id=device, alert_type="cold", from_start=True
        )
        one_type = asyncio.create_task(watch(cold, ALERTS // 3))
        second = [await report(n) for n in range(ALERTS // 2, ALERTS)]
        ids = first + second
        assert await replay == ids
        assert await live == second
        assert await one_type == ids[1::3]
