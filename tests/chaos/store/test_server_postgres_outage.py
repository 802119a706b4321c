"""A database outage under a real server: UNAVAILABLE, NOT_SERVING, then recovery losing nothing."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing import FaultProxy, running_server
from tests.chaos.store.postgres_route import rerouted, server_of
from tests.conftest import CHANNEL_OPTIONS, pg_rows
from tests.support.probes import NOT_SERVING, SERVING, health, poll


@pytest.mark.parametrize("outage", ["silent", "refused"])
async def test_database_outage_turns_unavailable_and_recovers_losing_nothing(
    pg_url: str, outage: str
) -> None:
    """silent: the network swallows everything (the hard case, only timeouts tell);
    refused: the database is down, connections are reset and new ones refused."""
    upstream = server_of(pg_url)
    async with FaultProxy(upstream) as proxy:
        store = rerouted(pg_url, proxy.address) + "&command_timeout=1"
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
                proxy.set_upstream(upstream)
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
