"""Deadlines, retries, pushback, throttling and hedging against real scripted servers.

Each test runs with the async client and with its sync twin (``mode``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import grpc
import pytest

import eventwire.client as ec
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.client import (
    HedgingPolicy,
    RetryEvent,
    RetryPolicy,
    ThrottlePolicy,
    backoff_ceiling,
)
from tests.support.client import Factory
from tests.support.scripted import Fail, Ok, ScriptedServer, Stall, scripted_server

S = grpc.StatusCode
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, multiplier=2.0, max_attempts=5)
# Generous for two shared cores under other test runs, far below the stall it bounds.
SLACK = 0.4


async def test_deadline_against_a_stalling_server(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.default = Stall()
    client = analytics_client(scripted.address)  # the 200 ms default deadline
    started = time.monotonic()
    with pytest.raises(ec.DeadlineExceededError) as info:
        await client.track_event("e", "u")
    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 0.2 + SLACK
    assert info.value.code() is S.DEADLINE_EXCEEDED
    assert info.value.attempts == 1  # a spent deadline is not retried
    await scripted.script.wait_for(lambda s: s.calls()[0].fate == "cancelled")
    assert len(scripted.script.calls("TrackEvent")) == 1


async def test_unavailable_k_times_then_ok(
    scripted: ScriptedServer, telemetry_client: Factory
) -> None:
    k = 3
    scripted.script.play("ReportAlert", [Fail(S.UNAVAILABLE)] * k + [Ok()])
    retries: list[RetryEvent] = []
    # Equal jitter keeps every sleep >= half its ceiling, so the deadline visibly shrinks.
    policy = RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter="equal")
    client = telemetry_client(scripted.address, retry=policy, on_retry=retries.append)
    reply = await client.report_alert("dev", "hot", idempotency_key="key-1")
    assert reply.tracking_id == "t-key-1"
    calls = scripted.script.calls("ReportAlert")
    assert len(calls) == k + 1
    # Every attempt carried the same idempotency key, so the server stores one alert.
    assert {c.request.idempotency_key for c in calls} == {"key-1"}
    assert [r.retry for r in retries] == [1, 2, 3]
    for event, before, after in zip(retries, calls, calls[1:], strict=False):
        assert event.code is S.UNAVAILABLE
        assert not event.pushback
        ceiling = backoff_ceiling(policy, event.retry)
        assert ceiling / 2 <= event.delay <= ceiling
        # The client really waited that long between attempts (less a clock tick).
        assert after.at - before.at >= event.delay - 0.002
    # Each attempt got only what was left of the one 2 s deadline.
    assert calls[-1].at - calls[0].at >= 0.175
    for call in calls:
        spent = call.at - calls[0].at
        assert call.time_remaining is not None
        # grpc-timeout travels rounded up to 100 ms steps above 1 s.
        assert call.time_remaining <= 2.0 - spent + 0.1


async def test_non_retryable_codes_fail_at_once(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.play("TrackEvent", [Fail(S.INVALID_ARGUMENT), Ok()])
    client = analytics_client(scripted.address, retry=FAST)
    with pytest.raises(ec.InvalidArgumentError) as info:
        await client.track_event("e", "u")
    assert info.value.attempts == 1
    assert len(scripted.script.calls()) == 1


async def test_pushback_is_honoured(scripted: ScriptedServer, analytics_client: Factory) -> None:
    scripted.script.play("CountEvents", [Fail(S.RESOURCE_EXHAUSTED, pushback="150"), Ok()])
    retries: list[RetryEvent] = []
    client = analytics_client(scripted.address, retry=FAST, on_retry=retries.append, timeout=2)
    assert await client.count_events("e") == 7
    assert [(r.delay, r.pushback) for r in retries] == [(0.15, True)]
    first, second = scripted.script.calls()
    assert second.at - first.at >= 0.148  # the server's 150 ms, not FAST's <= 10 ms


async def test_negative_pushback_stops_retries(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.play("CountEvents", [Fail(S.RESOURCE_EXHAUSTED, pushback="-1"), Ok()])
    client = analytics_client(scripted.address, retry=FAST, timeout=2)
    with pytest.raises(ec.ResourceExhaustedError) as info:
        await client.count_events("e")
    assert info.value.pushback_ms == -1
    assert len(scripted.script.calls()) == 1


async def test_throttle_stops_hammering_a_dead_backend(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.default = Fail(S.UNAVAILABLE)
    client = analytics_client(
        scripted.address,
        retry=FAST,
        throttle=ThrottlePolicy(max_tokens=4, token_ratio=0.1),
        breaker=None,
        timeout=2,
    )
    with ec.no_backoff():
        for _ in range(10):
            with pytest.raises(ec.UnavailableError):
                await client.track_event("e", "u")
    # Tokens 4 -> 3 (retry allowed) -> 2 (not > 2: stop); then 1 attempt per call.
    # Without throttling this would have been 10 x 5 = 50 attempts.
    assert len(scripted.script.calls()) == 2 + 9
    assert client.client.throttle.tokens == 0


async def test_stream_is_retried_whole_with_the_same_event_ids(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.play("StreamEvents", [Fail(S.UNAVAILABLE), Ok()])
    client = analytics_client(scripted.address, retry=FAST)
    events = [analytics_pb2.TrackEventRequest(event_name=f"e{i}") for i in range(3)]
    reply = await client.stream_events(events)
    assert reply.accepted == 3
    first, second = scripted.script.calls("StreamEvents")
    ids = [e.event_id for e in first.request]
    assert all(ids)
    assert ids == [e.event_id for e in second.request]
    assert not any(e.event_id for e in events)  # the caller's messages were not mutated


async def test_hedging_cuts_tail_latency(
    scripted: ScriptedServer, telemetry_client: Factory
) -> None:
    scripted.script.play("GetAlert", [Stall()])  # the first attempt hangs; hedges answer
    client = telemetry_client(scripted.address, hedging=HedgingPolicy(delay=0.05), timeout=5)
    started = time.monotonic()
    alert = await client.get_alert("abc")
    elapsed = time.monotonic() - started
    assert alert.tracking_id == "abc"
    assert elapsed < 0.05 + SLACK  # not the 5 s deadline the stalled attempt would take
    # The loser was cancelled, and the server saw it go.
    await scripted.script.wait_for(lambda s: s.calls()[0].fate == "cancelled")
    assert [c.fate for c in scripted.script.calls()] == ["cancelled", "answered"]


async def test_hedging_waits_its_delay_and_fatal_errors_end_the_call(
    scripted: ScriptedServer, telemetry_client: Factory
) -> None:
    scripted.script.play("GetAlert", [Ok(delay=0.01), Fail(S.NOT_FOUND)])
    client = telemetry_client(scripted.address, hedging=HedgingPolicy(delay=1.0))
    assert (await client.get_alert("a")).tracking_id == "a"
    assert len(scripted.script.calls()) == 1  # answered within the delay: no hedge sent
    with pytest.raises(ec.NotFoundError):
        await client.get_alert("b")
    assert len(scripted.script.calls()) == 2


async def test_hedges_after_a_non_fatal_failure_at_once(
    scripted: ScriptedServer, telemetry_client: Factory
) -> None:
    scripted.script.play("GetAlert", [Fail(S.UNAVAILABLE), Ok()])
    client = telemetry_client(scripted.address, hedging=HedgingPolicy(delay=30), timeout=5)
    started = time.monotonic()
    assert (await client.get_alert("c")).tracking_id == "c"
    assert time.monotonic() - started < SLACK  # not the 30 s hedging delay
    assert [c.fate for c in scripted.script.calls()] == ["failed UNAVAILABLE", "answered"]


async def test_cancelling_a_call_cancels_the_rpc_and_propagates() -> None:
    async with scripted_server() as srv:
        srv.script.default = Stall()
        async with ec.AnalyticsClient(srv.address, timeout=30) as client:
            task = asyncio.create_task(client.track_event("e", "u"))
            await srv.script.wait_for(lambda s: len(s.calls()) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await srv.script.wait_for(lambda s: s.calls()[0].fate == "cancelled")
            # The cancelled attempt was neither a failure nor a retry.
            assert len(srv.script.calls()) == 1
            assert client.breaker is not None
            assert client.breaker.state is ec.BreakerState.CLOSED


async def test_resilient_channel_works_on_plain_stubs(scripted: ScriptedServer) -> None:
    scripted.script.play("TrackEvent", [Fail(S.UNAVAILABLE), Fail(S.UNAVAILABLE), Ok()])
    scripted.script.play("CountEvents", [Fail(S.UNAVAILABLE), Ok()])
    read_only = {"/analytics.AnalyticsService/TrackEvent"}
    async with ec.resilient_channel(
        scripted.address, retry=FAST, timeout=2, idempotent=read_only
    ) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        call = stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e", event_id="x"))
        reply = await call
        assert reply.event_id == "x"
        assert await call.code() is S.OK
        # CountEvents is not in the idempotent set: its failure comes back as is,
        # as an error plain grpcio code understands.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CountEvents(analytics_pb2.CountEventsRequest())
        assert isinstance(info.value, ec.UnavailableError)
        assert info.value.code() is S.UNAVAILABLE
    assert len(scripted.script.calls("TrackEvent")) == 3
    assert len(scripted.script.calls("CountEvents")) == 1


def test_sync_resilient_channel_works_on_plain_stubs() -> None:
    async def serve_and_call() -> tuple[int, str]:
        async with scripted_server() as srv:
            srv.script.play("ReportAlert", [Fail(S.UNAVAILABLE), Ok()])

            def call() -> str:
                channel = ec.resilient_sync_channel(srv.address, retry=FAST, timeout=2)
                with channel:
                    stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                    reply = stub.ReportAlert(telemetry_pb2.AlertRequest(idempotency_key="k"))
                return reply.tracking_id

            tracking_id = await asyncio.to_thread(call)
            return len(srv.script.calls()), tracking_id

    assert asyncio.run(serve_and_call()) == (2, "t-k")


async def test_deadline_propagates_from_a_server_handler() -> None:
    """A handler calling another service passes on what is left of its own deadline."""
    async with scripted_server() as downstream:
        async with ec.AnalyticsClient(downstream.address, timeout=30) as onward:

            class Relay(telemetry_pb2_grpc.TelemetryServiceServicer):
                async def GetAlert(
                    self,
                    request: telemetry_pb2.GetAlertRequest,
                    context: grpc.aio.ServicerContext[Any, Any],
                ) -> telemetry_pb2.Alert:
                    with ec.deadline_from(context):
                        await onward.count_events()
                    return telemetry_pb2.Alert(tracking_id=request.tracking_id)

            relay_servicer: Any = Relay  # ReportAlert is left to the base class
            async with (
                scripted_server(telemetry=relay_servicer()) as relay,
                ec.TelemetryClient(relay.address, timeout=0.5) as client,
            ):
                assert (await client.get_alert("x")).tracking_id == "x"
        (seen,) = downstream.script.calls()
        # 30 s asked for by the onward client, cut to the caller's 0.5 s.
        assert seen.time_remaining is not None
        # grpc-timeout travels rounded up (to 1 ms below 1 s): allow a few of those.
        assert 0 < seen.time_remaining <= 0.51


async def test_resilient_channel_hedges_and_watches_streams(scripted: ScriptedServer) -> None:
    scripted.script.play("GetAlert", [Stall()])
    breaker = ec.CircuitBreaker(
        ec.CircuitBreakerPolicy(
            window_size=1, minimum_calls=1, failure_codes={S.UNIMPLEMENTED}, open_duration=60
        )
    )
    async with ec.resilient_channel(
        scripted.address, timeout=5, hedging=HedgingPolicy(delay=0.02), breaker=breaker
    ) as channel:
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        alert = await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id="h"))
        assert alert.tracking_id == "h"
        await scripted.script.wait_for(lambda s: s.calls()[0].fate == "cancelled")

        # A streamed response is watched through its done callback, not awaited:
        # its failure (UNIMPLEMENTED here, counted by this policy) reaches the breaker.
        opened = asyncio.Event()
        breaker.add_hook(lambda t: opened.set() if t.after is ec.BreakerState.OPEN else None)
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        call = analytics.IngestEvents(iter([analytics_pb2.EventBatch(sequence=1)]))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
        assert info.value.code() is S.UNIMPLEMENTED
        async with asyncio.timeout(5):
            await opened.wait()
        with pytest.raises(ec.CircuitOpenError):
            await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id="x"))


async def test_token_goes_with_every_attempt(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    scripted.script.play("TrackEvent", [Fail(S.UNAVAILABLE), Ok()])
    scripted.script.play("CountEvents", [Fail(S.UNAUTHENTICATED)])
    token = "s3cret"  # noqa: S105 - a test token for a scripted server
    client = analytics_client(scripted.address, retry=FAST, token=token, timeout=2)
    await client.track_event("e", "u")
    with pytest.raises(ec.UnauthenticatedError):
        await client.count_events()
    seen = scripted.script.calls()
    assert len(seen) == 3
    assert all(c.metadata.get("authorization") == "Bearer s3cret" for c in seen)


async def test_a_call_the_server_cancelled_is_retried(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    # What a call caught by a draining server's shutdown receives.
    scripted.script.play("TrackEvent", [Fail(S.CANCELLED), Ok()])
    client = analytics_client(scripted.address, retry=FAST)
    reply = await client.track_event("e", "u")
    assert reply.success
    first, second = scripted.script.calls("TrackEvent")
    assert first.request.event_id == second.request.event_id  # the same event, stored once


def open_on_unimplemented(calls: int) -> tuple[ec.CircuitBreaker, threading.Event]:
    """A breaker that opens once half of ``calls`` calls failed, and an event set when it does.

    Streams the scripted server does not serve end UNIMPLEMENTED: failures for
    this policy. A stream's outcome reaches the breaker from its done callback
    (on a grpc thread for the sync twin), just after the caller saw the error.
    """
    policy = ec.CircuitBreakerPolicy(
        window_size=calls, minimum_calls=calls, failure_codes={S.UNIMPLEMENTED}, open_duration=60
    )
    opened = threading.Event()
    hook = partial(_set_if_open, opened)
    return ec.CircuitBreaker(policy, on_transition=hook), opened


def _set_if_open(opened: threading.Event, transition: ec.Transition) -> None:
    if transition.after is ec.BreakerState.OPEN:
        opened.set()


async def test_ingest_events_is_guarded_by_the_breaker(
    scripted: ScriptedServer, analytics_client: Factory
) -> None:
    breaker, opened = open_on_unimplemented(2)
    client = analytics_client(scripted.address, breaker=breaker)
    raw = client.client  # streams are used as they are, not through the facade

    async def ingest() -> list[analytics_pb2.IngestAck]:
        event = analytics_pb2.TrackEventRequest(event_name="e")
        batches = [analytics_pb2.EventBatch(sequence=1, events=[event])]
        if client.sync:
            return await asyncio.to_thread(lambda: list(raw.ingest_events(batches)))
        return [ack async for ack in raw.ingest_events(batches)]

    for _ in range(2):
        with pytest.raises(ec.InternalError) as info:  # the tree's, from the generator too
            await ingest()
        assert info.value.code() is S.UNIMPLEMENTED
    assert await asyncio.to_thread(opened.wait, 5)
    with pytest.raises(ec.CircuitOpenError) as refused:
        await ingest()
    assert refused.value.attempts == 0  # failed fast: no stream was opened


def test_sync_resilient_channel_watches_streams_and_sends_the_token() -> None:
    token = "s3cret"  # noqa: S105 - a test token for a scripted server

    async def serve_and_call() -> list[Any]:
        async with scripted_server() as srv:
            breaker, opened = open_on_unimplemented(3)

            def call() -> None:
                channel = ec.resilient_sync_channel(srv.address, breaker=breaker, token=token)
                with channel:
                    stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
                    assert stub.CountEvents(analytics_pb2.CountEventsRequest()).count == 7
                    for _ in range(2):
                        with pytest.raises(grpc.RpcError) as info:
                            list(stub.IngestEvents(iter([analytics_pb2.EventBatch()])))
                        assert info.value.code() is S.UNIMPLEMENTED
                    assert opened.wait(5)
                    # grpcio hands an interceptor's error over when the stream is read.
                    with pytest.raises(ec.CircuitOpenError):
                        list(stub.IngestEvents(iter([analytics_pb2.EventBatch()])))

            await asyncio.to_thread(call)
            return srv.script.calls()

    (seen,) = asyncio.run(serve_and_call())
    assert seen.metadata.get("authorization") == f"Bearer {token}"
