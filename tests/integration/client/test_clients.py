"""Every RPC of both services through the clients (async and sync) against a real server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import eventwire.client as ec
from eventwire.api import analytics_pb2
from eventwire.runtime.server import Server
from eventwire.testing import running_server
from tests.support.client import Factory


@pytest.fixture
async def eventwire_server() -> AsyncIterator[Server]:
    async with running_server() as srv:
        yield srv


async def test_analytics_rpcs(eventwire_server: Server, analytics_client: Factory) -> None:
    client = analytics_client(eventwire_server.address, timeout=5)
    assert client.client.resilience.timeout == 5
    first = await client.track_event("signup", "u1", properties={"plan": "pro"}, event_id="e-1")
    again = await client.track_event("signup", "u1", properties={"plan": "pro"}, event_id="e-1")
    assert (first.success, first.duplicate, first.event_id) == (True, False, "e-1")
    assert again.duplicate  # a retried write is acknowledged, not stored twice
    generated = await client.track_event("signup", "u2")
    assert uuid.UUID(generated.event_id).version == 7  # the client chose a time-ordered key
    batch = await client.stream_events(
        [
            {"event_name": "view", "user_id": "u1"},
            analytics_pb2.TrackEventRequest(event_name="view"),
        ]
    )
    assert batch.accepted == 2
    assert await client.count_events("signup") == 2
    assert await client.count_events("view") == 2
    with pytest.raises(ec.InvalidArgumentError) as info:
        await client.stream_events([{"event_name": ""}])
    assert info.value.field_violations


async def test_telemetry_rpcs(eventwire_server: Server, telemetry_client: Factory) -> None:
    client = telemetry_client(eventwire_server.address)
    assert client.client.resilience.timeout == ec.DEFAULT_TELEMETRY_TIMEOUT
    one = await client.report_alert("dev-1", "overheat", idempotency_key="k-1")
    two = await client.report_alert("dev-1", "overheat", idempotency_key="k-1")
    assert one.acknowledged
    assert one.tracking_id == two.tracking_id
    alert = await client.get_alert(one.tracking_id)
    assert (alert.device_id, alert.alert_type) == ("dev-1", "overheat")
    with pytest.raises(ec.NotFoundError):
        await client.get_alert("no-such-alert")


async def test_defaults_and_closed_clients(analytics_client: Factory, mode: str) -> None:
    client = analytics_client("127.0.0.1:1")
    assert client.client.resilience.timeout == ec.DEFAULT_ANALYTICS_TIMEOUT == 0.2
    assert isinstance(client.client.breaker, ec.CircuitBreaker)
    assert isinstance(client.client.throttle, ec.RetryThrottle)
    await client.aclose()
    with pytest.raises(ec.ClientClosedError):
        await client.track_event("e", "u")
    assert mode in ("async", "sync")


async def test_nothing_listening_is_unavailable_within_the_deadline(
    analytics_client: Factory,
) -> None:
    # Port 1 on loopback: connection refused, every attempt UNAVAILABLE.
    client = analytics_client("127.0.0.1:1", breaker=None, timeout=1.0)
    with ec.no_backoff(), pytest.raises(ec.UnavailableError) as info:
        await client.count_events()
    assert info.value.attempts == ec.RetryPolicy().max_attempts


async def test_batches_are_acknowledged(
    eventwire_server: Server, analytics_client: Factory
) -> None:
    client = analytics_client(eventwire_server.address, timeout=5)
    ack = await client.track_events(
        [{"event_name": "batch", "event_id": "b-1"}, {"event_name": "batch"}, {"event_name": ""}],
        sequence=7,
    )
    assert (ack.sequence, ack.accepted, ack.rejected) == (7, 2, 1)
    assert ack.rejections[0].index == 2
    again = await client.track_events(
        analytics_pb2.EventBatch(
            sequence=8, events=[analytics_pb2.TrackEventRequest(event_name="batch", event_id="b-1")]
        )
    )
    assert (again.sequence, again.duplicates) == (8, 1)

    batches = [
        analytics_pb2.EventBatch(
            sequence=n, events=[analytics_pb2.TrackEventRequest(event_name="ingest")] * 3
        )
        for n in (1, 2)
    ]
    raw = client.client  # the facade makes methods awaitable; streams are used as they are
    if client.sync:
        received = await asyncio.to_thread(lambda: list(raw.ingest_events(batches)))
    else:
        received = [ack async for ack in raw.ingest_events(batches)]
    assert sorted(a.sequence for a in received) == [1, 2]
    assert sum(a.accepted for a in received) == 6  # ids were filled in: 6 distinct events
    assert await client.count_events("ingest") == 6
