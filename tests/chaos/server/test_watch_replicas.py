"""Two replicas, three writers, a watcher cut off four times: each acked alert arrives once.

The replicas are processes on one PostgreSQL; the writers report through both;
the watcher hangs up twice and loses its replica to SIGKILL and to SIGTERM.

A call that reaches a replica just as it shuts down can end CANCELLED rather
than UNAVAILABLE: grpc core cancels the calls its transport accepted but had
not yet handed to the application when the server's shutdown begins (a
replica's drain: `eventwire serve`'s `grpc.stop(grace)`; a SIGKILLed
supervisor's worker drains too). Reproduced with 480 watches started across
drains: 2 ended CANCELLED, the rest UNAVAILABLE. The SDK's RetryPolicy retries
CANCELLED for that reason; here it counts as a cut-off only for the calls
made while the test stops a replica, and stays fatal everywhere else.
"""

from __future__ import annotations

import asyncio
import random

import grpc

from eventwire.api import telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing._process import ServerProcess

PER_WRITER = 120
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
STOPPING = RETRYABLE | {grpc.StatusCode.CANCELLED}
"""What a call to a replica being stopped may end with (see the module docstring)."""


async def test_a_resumed_watcher_gets_every_acknowledged_alert_exactly_once(pg_url: str) -> None:
    replicas = [
        ServerProcess("--store", pg_url, "--grace", "3", "--workers", "1", http_address="")
        for _ in range(2)
    ]
    for replica in replicas:
        await asyncio.to_thread(replica.start)
    rng = random.Random(18)  # noqa: S311 - test timing, not secrets
    acked: list[str] = []
    received: list[telemetry_pb2.Alert] = []
    endings: list[str] = []

    async def report(start: int, writer: int, n: int) -> str:
        # A retry carries the same idempotency key, so a lost reply stores nothing twice.
        request = telemetry_pb2.AlertRequest(
            device_id=f"dev-{writer}", alert_type="heat", idempotency_key=f"w{writer}-{n}"
        )
        for attempt in range(200):
            replica = replicas[(start + attempt) % 2]
            try:
                async with grpc.aio.insecure_channel(replica.address) as ch:
                    reply = await telemetry_pb2_grpc.TelemetryServiceStub(ch).ReportAlert(
                        request, timeout=2
                    )
            except grpc.aio.AioRpcError as exc:
                # Writers run through the kill and the drain: every call may meet a stop.
                if exc.code() not in STOPPING:
                    raise
                await asyncio.sleep(0.05)
            else:
                return reply.tracking_id
        raise AssertionError("an alert could not be reported")

    async def writer(number: int) -> None:
        for n in range(PER_WRITER):
            acked.append(await report(number + n, number, n))
            await asyncio.sleep(rng.uniform(0, 0.01))

    async def watch(
        replica: ServerProcess, after: str, until: int, *, stopped: bool = False
    ) -> str:
        """Read until ``until`` alerts were received in all; the cursor to resume from.

        ``stopped``: the test stops ``replica`` during this watch."""
        ending = STOPPING if stopped else RETRYABLE
        async with grpc.aio.insecure_channel(replica.address) as ch:
            call = telemetry_pb2_grpc.TelemetryServiceStub(ch).WatchAlerts(
                telemetry_pb2.WatchAlertsRequest(after=after, from_start=not after)
            )
            try:
                while len(received) < until:
                    alert = await call.read()
                    assert isinstance(alert, telemetry_pb2.Alert)
                    received.append(alert)
                    after = alert.cursor
                endings.append("hung up")
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in ending:
                    raise
                endings.append(f"cut off at {len(received)}")
            finally:
                call.cancel()
        return after

    total = 3 * PER_WRITER
    writers = asyncio.gather(*(writer(i) for i in range(3)))
    try:
        cursor = await watch(replicas[0], "", total // 5)
        # Cut off 1: the watcher hangs up; it resumes on the other replica.
        cursor = await watch(replicas[1], cursor, 2 * total // 5)
        # Cut off 2: the replica it watches through dies (SIGKILL) mid-stream.
        killer = asyncio.create_task(asyncio.sleep(0.2))
        killer.add_done_callback(lambda _: replicas[1].kill())
        cursor = await watch(replicas[1], cursor, total, stopped=True)
        await asyncio.to_thread(replicas[1].restart)
        # Cut off 3: resumes on the first replica, hangs up again.
        cursor = await watch(replicas[0], cursor, 3 * total // 5)
        # Cut off 4: the first replica drains (SIGTERM) under it.
        drainer = asyncio.create_task(asyncio.sleep(0.2))
        drainer.add_done_callback(lambda _: replicas[0].terminate())
        cursor = await watch(replicas[0], cursor, total, stopped=True)
        await asyncio.to_thread(replicas[0].wait)
        await asyncio.to_thread(replicas[0].restart)
        await writers
        # The rest, from the restarted replica that was killed.
        await asyncio.wait_for(watch(replicas[1], cursor, total), 60)
    finally:
        writers.cancel()
        for replica in replicas:
            replica.kill()
    ids = [a.tracking_id for a in received]
    assert len(acked) == total
    # Each cut-off really happened mid-stream: the kill and the drain included.
    assert endings[:2] == ["hung up", "hung up"]
    assert endings[2].startswith("cut off")
    assert int(endings[2].split()[-1]) < total
    assert endings[3] == "hung up"
    assert endings[4].startswith("cut off")
    assert int(endings[4].split()[-1]) < total
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    assert set(ids) == set(acked), "an acknowledged alert was never delivered"
    assert len({a.cursor for a in received}) == len(received), "a cursor was handed out twice"
    per_writer = [[a.device_id for a in received].count(f"dev-{w}") for w in range(3)]
    assert per_writer == [PER_WRITER] * 3
