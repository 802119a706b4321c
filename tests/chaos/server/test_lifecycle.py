"""Process-level behaviour: restarts, signals, health, storage faults, overload."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing import running_server
from eventwire.testing._process import ServerProcess
from tests.conftest import CHANNEL_OPTIONS, fill_disk

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def event(name: str = "e", **fields: object) -> analytics_pb2.TrackEventRequest:
    return analytics_pb2.TrackEventRequest(event_name=name, **fields)  # type: ignore[arg-type]


def health_stub(channel: grpc.aio.Channel) -> Any:
    # grpcio-health-checking's stubs are typed for sync channels only.
    return health_pb2_grpc.HealthStub(channel)


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_stub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    status: int = reply.status
    return status


async def wait_for_health(channel: grpc.aio.Channel, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (current := await health_of(channel)) != status:
        if time.monotonic() > deadline:
            pytest.fail(f"health stayed {current}, expected {status}")
        await asyncio.sleep(0.05)


async def test_restart_keeps_every_acknowledged_event_and_alert(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    async with running_server(store=store) as srv, grpc.aio.insecure_channel(srv.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        await asyncio.gather(*(analytics.TrackEvent(event("kept")) for _ in range(40)))
        await analytics.StreamEvents(iter([event("streamed")] * 10))
        alerts = [
            await telemetry.ReportAlert(
                telemetry_pb2.AlertRequest(device_id=f"d{i}", alert_type="t")
            )
            for i in range(5)
        ]
    async with running_server(store=store) as srv, grpc.aio.insecure_channel(srv.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        counted = await analytics.CountEvents(analytics_pb2.CountEventsRequest())
        assert counted.count == 50
        for i, ack in enumerate(alerts):
            got = await telemetry.GetAlert(
                telemetry_pb2.GetAlertRequest(tracking_id=ack.tracking_id)
            )
            assert got.device_id == f"d{i}"


async def streams_in_flight(proc: ServerProcess, count: int, timeout: float = 10) -> None:
    url = f"http://{proc.metrics_address}/metrics"
    gauge = 'eventwire_rpcs_in_flight{grpc_method="StreamEvents"}'
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            text = (await http.get(url)).text
            if any(
                line.startswith(gauge) and float(line.split()[-1]) >= count
                for line in text.splitlines()
            ):
                return
            await asyncio.sleep(0.02)
    pytest.fail(f"{count} StreamEvents calls were never in flight")


async def first_refusal(
    analytics: analytics_pb2_grpc.AnalyticsServiceAsyncStub, timeout: float = 10
) -> tuple[grpc.StatusCode, int]:
    """Send "late" events until one is refused: the refusal's code, and how many were acked."""
    acked = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = await analytics.TrackEvent(event("late"), timeout=1)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), acked
        acked += reply.success
        await asyncio.sleep(0.02)
    pytest.fail("server kept accepting RPCs after SIGTERM")


async def test_sigterm_drains_in_flight_rpcs_then_exits_zero(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    proc = ServerProcess("--store", store, "--grace", "10").start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            await analytics.TrackEvent(event("before"))
            in_flight = analytics.StreamEvents()
            await in_flight.write(event("in-flight"))
            await in_flight.write(event("in-flight"))
            # Signal only once a handler serves the stream: before that, it is a
            # call racing the shutdown, not one in flight.
            await streams_in_flight(proc, 1)

            proc.terminate()
            # New RPCs are refused once the drain has begun. One that races the
            # start of grpcio's shutdown is cancelled before reaching a handler.
            refusal, late_acked = await first_refusal(analytics)
            assert refusal in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}

            # ...while the stream that was already open still completes and commits.
            await in_flight.write(event("in-flight"))
            await in_flight.done_writing()
            reply = await in_flight
            assert (reply.success, reply.accepted) == (True, 3)
        assert await asyncio.to_thread(proc.wait) == 0
        assert any(line.get("msg") == "stopped" for line in proc.logs)
    finally:
        proc.kill()

    with sqlite3.connect(tmp_path / "events.db") as conn:
        names = dict(conn.execute("SELECT event_name, count(*) FROM events GROUP BY 1").fetchall())
    # "late" events raced the signal: any acknowledged before the drain began must be
    # stored, and the refused one must not be.
    late = names.pop("late", 0)
    assert names == {"before": 1, "in-flight": 3}
    assert late == late_acked


async def test_sigint_also_drains_and_exits_zero(tmp_path: Path) -> None:
    proc = ServerProcess("--store", f"sqlite:///{tmp_path / 'e.db'}").start()
    try:
        os.kill(proc.pid, 2)
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


async def test_client_that_dies_mid_stream_stores_nothing(tmp_path: Path) -> None:
    child = (
        "import asyncio, os, sys, grpc\n"
        "from eventwire.api import analytics_pb2 as pb, analytics_pb2_grpc as rpc\n"
        "async def main():\n"
        "    ch = grpc.aio.insecure_channel(sys.argv[1])\n"
        "    call = rpc.AnalyticsServiceStub(ch).StreamEvents(timeout=30)\n"
        "    for _ in range(3):\n"
        "        await call.write(pb.TrackEventRequest(event_name='orphan'))\n"
        "    print('written', flush=True)\n"
        "    sys.stdin.readline()\n"
        "    os._exit(1)\n"
        "asyncio.run(main())\n"
    )
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            child,
            srv.address,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert await proc.stdout.readline() == b"written\n"
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        await proc.wait()
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        # Give the server time to notice the dead peer, proven by an RPC that completes after it.
        for _ in range(20):
            await analytics.TrackEvent(event("probe"))
        counted = await analytics.CountEvents(analytics_pb2.CountEventsRequest(event_name="orphan"))
        assert counted.count == 0


async def test_health_goes_not_serving_while_draining(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", grace=0.5) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        assert await health_of(ch) == SERVING
        assert await health_of(ch, "analytics.AnalyticsService") == SERVING
        assert await health_of(ch, "telemetry.TelemetryService") == SERVING
        watch = health_stub(ch).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert isinstance(first, health_pb2.HealthCheckResponse)
        assert first.status == SERVING
        stopping = asyncio.create_task(srv.stop())
        second = await watch.read()
        assert isinstance(second, health_pb2.HealthCheckResponse)
        assert second.status == NOT_SERVING
        await stopping


async def test_full_disk_is_unavailable_then_recovers(small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    async with (
        running_server(store=f"sqlite:///{small_disk / 'e.db'}", store_probe_interval=0.05) as srv,
        grpc.aio.insecure_channel(srv.address, options=CHANNEL_OPTIONS) as ch,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await analytics.TrackEvent(event("before"))
        fill_disk(ballast)
        big = {f"k{i}": "v" * 4000 for i in range(7)}
        acknowledged = 0
        refused: grpc.StatusCode | None = None
        for _ in range(1000):  # bounded: the disk is full long before this
            try:
                await analytics.TrackEvent(event("filling", properties=big))
            except grpc.aio.AioRpcError as exc:
                refused = exc.code()
                break
            acknowledged += 1
        assert refused == grpc.StatusCode.UNAVAILABLE
        await wait_for_health(ch, NOT_SERVING)

        ballast.unlink()
        await wait_for_health(ch, SERVING)
        await analytics.TrackEvent(event("after"))
        counts = {
            name: (
                await analytics.CountEvents(analytics_pb2.CountEventsRequest(event_name=name))
            ).count
            for name in ("before", "filling", "after")
        }
        assert counts == {"before": 1, "filling": acknowledged, "after": 1}


async def test_overload_is_resource_exhausted_with_pushback(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    async with (
        running_server(store=f"sqlite:///{db}", max_pending_events=20, max_batch_events=10) as srv,
        grpc.aio.insecure_channel(srv.address, options=CHANNEL_OPTIONS) as ch,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await analytics.TrackEvent(event("warm-up"))
        # Another writer holds the database lock: commits stall, the queue fills.
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            calls = [asyncio.ensure_future(analytics.TrackEvent(event("burst"))) for _ in range(60)]
            # Refusals come back at once, while the admitted calls wait for the lock
            # (released well within SQLite's 5 s busy timeout).
            await asyncio.wait(calls, timeout=4, return_when=asyncio.FIRST_COMPLETED)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        results = await asyncio.gather(*calls, return_exceptions=True)
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert refused, "a full queue must refuse new work"
        for exc in refused:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            pushback = dict(exc.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
            assert pushback is not None
            assert int(str(pushback)) > 0
        accepted = sum(isinstance(r, analytics_pb2.TrackEventResponse) for r in results)
        counted = await analytics.CountEvents(analytics_pb2.CountEventsRequest(event_name="burst"))
        assert counted.count == accepted


async def test_liveness_stays_serving_while_storage_is_down(small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    async with (
        running_server(store=f"sqlite:///{small_disk / 'e.db'}", store_probe_interval=0.05) as srv,
        grpc.aio.insecure_channel(srv.address, options=CHANNEL_OPTIONS) as ch,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        fill_disk(ballast)
        big = {f"k{i}": "v" * 4000 for i in range(7)}
        for _ in range(1000):
            try:
                await analytics.TrackEvent(event("filling", properties=big))
            except grpc.aio.AioRpcError:
                break
        await wait_for_health(ch, NOT_SERVING)
        assert await health_of(ch, "liveness") == SERVING
        ballast.unlink()
        await wait_for_health(ch, SERVING)


async def test_a_nonsense_store_url_exits_2_without_a_traceback(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        "serve",
        "--address",
        "127.0.0.1:0",
        "--http-address",
        "",
        "--metrics-address",
        "",
        "--store",
        "postgresql://127.0.0.1:1/db?bogus=1",
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"Traceback" not in err
    assert b"invalid configuration" in err
