"""A real eventwire server on the real PostgreSQL: every RPC, and a database outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing import FaultProxy, running_server
from tests.conftest import pg_rows

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CHANNEL_OPTIONS = (("grpc.enable_retries", 0),)


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def health(channel: grpc.aio.Channel) -> int:
    # grpcio-health-checking's stubs are typed for sync channels only.
    stub: Any = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    status: int = reply.status
    return status


async def test_every_rpc_on_postgresql(pg_url: str) -> None:
    async with (
        running_server(store=pg_url) as server,
        grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        assert await health(channel) == SERVING

        first = await analytics.TrackEvent(
            analytics_pb2.TrackEventRequest(
                event_name="signup", user_id="u1", event_id="evt-1", properties={"plan": "pro"}
            )
        )
        again = await analytics.TrackEvent(
            analytics_pb2.TrackEventRequest(event_name="signup", event_id="evt-1")
        )
        assert (first.success, first.duplicate, again.success, again.duplicate) == (
            True,
            False,
            True,
            True,
        )

        stream = [
            analytics_pb2.TrackEventRequest(event_name="view", user_id="u2", event_id=f"s{i % 40}")
            for i in range(50)
        ]
        reply = await analytics.StreamEvents(iter(stream))
        assert (reply.accepted, reply.duplicates) == (40, 10)

        counts = [
            (await analytics.CountEvents(analytics_pb2.CountEventsRequest(**f))).count  # type: ignore[arg-type]
            for f in ({}, {"event_name": "view"}, {"user_id": "u1"})
        ]
        assert counts == [41, 40, 1]

        alert = telemetry_pb2.AlertRequest(
            device_id="dev-1", alert_type="overheat", idempotency_key="k-1"
        )
        a1 = await telemetry.ReportAlert(alert)
        a2 = await telemetry.ReportAlert(alert)
        assert a1.acknowledged
        assert a1.tracking_id == a2.tracking_id
        stored = await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=a1.tracking_id))
        assert (stored.device_id, stored.alert_type) == ("dev-1", "overheat")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id="nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(41, 41)]
    assert pg_rows(pg_url, "SELECT properties->>'plan' FROM events WHERE event_id = 'evt-1'") == [
        ("pro",)
    ]
    assert pg_rows(pg_url, "SELECT count(*) FROM alerts") == [(1,)]


@pytest.mark.parametrize("outage", ["silent", "refused"])
async def test_database_outage_turns_unavailable_and_recovers_losing_nothing(
    pg_url: str, outage: str
) -> None:
    """silent: the network swallows everything (the hard case, only timeouts tell);
    refused: the database is down, connections are reset and new ones refused."""
    async with FaultProxy("127.0.0.1:5432") as proxy:
        store = pg_url.replace("127.0.0.1:5432", proxy.address, 1) + "&command_timeout=1"
        async with (
            running_server(store=store, store_probe_interval=0.2) as server,
            grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel,
        ):
            analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            acked: set[str] = set()
            unavailable = 0
            other_errors: list[str] = []
            stop = asyncio.Event()

            async def sender(worker: int) -> None:
                nonlocal unavailable
                n = 0
                while not stop.is_set():
                    event_id = f"w{worker}-{n}"
                    n += 1
                    try:
                        reply = await analytics.TrackEvent(
                            analytics_pb2.TrackEventRequest(event_name="tick", event_id=event_id),
                            timeout=10,
                        )
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() == grpc.StatusCode.UNAVAILABLE:
                            unavailable += 1
                        else:
                            other_errors.append(f"{exc.code().name}: {exc.details()}")
                        await asyncio.sleep(0.01)  # a client backs off
                        continue
                    assert reply.success
                    acked.add(event_id)

            senders = [asyncio.create_task(sender(w)) for w in range(4)]
            try:

                async def acked_at_least(n: int) -> bool:
                    return len(acked) >= n

                await poll(lambda: acked_at_least(50), "events to be acknowledged")
                assert await health(channel) == SERVING

                if outage == "silent":
                    proxy.set_faults(blackhole=True)
                else:
                    proxy.set_upstream("127.0.0.1:1")  # nothing listens on port 1
                    proxy.reset_connections()

                async def health_is(status: int) -> bool:
                    return await health(channel) == status

                await poll(lambda: health_is(NOT_SERVING), "health NOT_SERVING")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await analytics.TrackEvent(
                        analytics_pb2.TrackEventRequest(event_name="tick", event_id="probe"),
                        timeout=10,
                    )
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await analytics.CountEvents(analytics_pb2.CountEventsRequest(), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                during = len(acked)

                # It comes back; connections open during the outage are gone for good.
                proxy.set_faults()
                proxy.set_upstream("127.0.0.1:5432")
                proxy.reset_connections()
                await poll(lambda: health_is(SERVING), "health SERVING again", timeout=30)
                await poll(lambda: acked_at_least(during + 50), "deliveries after recovery")
            finally:
                stop.set()
                await asyncio.gather(*senders)
            assert unavailable > 0
            assert other_errors == []
            count = await analytics.CountEvents(analytics_pb2.CountEventsRequest(), timeout=10)

    stored = {str(row[0]) for row in pg_rows(pg_url, "SELECT event_id FROM events")}
    assert acked <= stored, f"acknowledged but lost: {sorted(acked - stored)[:10]}"
    assert count.count == len(stored)


async def test_two_replicas_store_each_event_once(pg_url: str) -> None:
    """The same event ids sent to two servers on one database at the same time."""
    ids = [f"evt-{i}" for i in range(150)]
    async with running_server(store=pg_url) as one, running_server(store=pg_url) as two:
        channels = [
            grpc.aio.insecure_channel(s.address, options=CHANNEL_OPTIONS) for s in (one, two)
        ]
        try:
            stubs = [analytics_pb2_grpc.AnalyticsServiceStub(ch) for ch in channels]

            async def send(
                stub: analytics_pb2_grpc.AnalyticsServiceAsyncStub, order: list[str]
            ) -> list[tuple[str, bool]]:
                replies = await asyncio.gather(
                    *(
                        stub.TrackEvent(
                            analytics_pb2.TrackEventRequest(event_name="e", event_id=i), timeout=30
                        )
                        for i in order
                    )
                )
                assert all(r.success for r in replies)
                return [(r.event_id, r.duplicate) for r in replies]

            first, second = await asyncio.gather(
                send(stubs[0], ids),
                send(stubs[1], ids[::-1]),
            )
        finally:
            for ch in channels:
                await ch.close()
    fresh = [event_id for event_id, duplicate in first + second if not duplicate]
    assert sorted(fresh) == sorted(ids), "each id is new on exactly one replica"
    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(150, 150)]
