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
            """The first ``count`` alerts; or, with ``count`` 0, up to the last one written."""
            call: Any = stub.WatchAlerts(request)
            got: list[str] = []
            while len(got) < count or (not count and (not got or got[-1] != last[0])):
                alert = await asyncio.wait_for(call.read(), 30)
                got.append(alert.tracking_id)
            call.cancel()
            return got

        last = [""]

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
        mine = telemetry_pb2.WatchAlertsRequest(device_id=device)
        live = asyncio.create_task(watch(mine, 0))
        replay = asyncio.create_task(
            watch(telemetry_pb2.WatchAlertsRequest(device_id=device, from_start=True), ALERTS)
        )
        cold = telemetry_pb2.WatchAlertsRequest(
            device_id=device, alert_type="cold", from_start=True
        )
        one_type = asyncio.create_task(watch(cold, ALERTS // 3))
        await asyncio.sleep(0.2)  # most likely, the live watcher starts about here
        second = [await report(n) for n in range(ALERTS // 2, ALERTS - 1)]
        last[0] = await report(ALERTS - 1)
        ids = [*first, *second, last[0]]
        assert await replay == ids
        # From when its call began (not known to the client exactly), each alert once.
        from_now = await live
        assert from_now == ids[-len(from_now) :]
        assert await one_type == ids[1::3]
