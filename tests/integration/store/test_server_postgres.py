"""A real eventwire server on the real PostgreSQL: every RPC, and a database outage."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing import running_server
from tests.conftest import CHANNEL_OPTIONS, pg_rows
from tests.support.probes import SERVING, health


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
