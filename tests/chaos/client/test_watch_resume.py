"""watch_alerts through real server deaths: every acknowledged alert reaches the caller once.

The SDK's watch reconnects and resumes by itself; nothing here resumes it by
hand. Servers are ``eventwire serve`` processes, SIGKILLed (no drain, like a
crash) and SIGTERMed (drain), restarted on the same port and the same
database: a SQLite file, or one PostgreSQL shared by two replicas. Writers
keep reporting through it all, so some of their calls die with the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

import eventwire.client as ec
from eventwire.api import telemetry_pb2
from eventwire.testing._process import ServerProcess
from tests.integration.client_reads.readers import Readers

TRANSIENT = (ec.UnavailableError, ec.DeadlineExceededError, ec.CancelledRpcError)
BETWEEN_CUTS = 60
"""Alerts the watcher receives between two cuts, so each cut comes mid-stream."""


async def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    async def poll() -> None:
        # The watcher runs in another task or thread: look again until it got there.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def _report(client: ec.TelemetryClient, device: str, key: str) -> str:
    """Report until acknowledged; a retry reuses the key, so an alert whose reply was
    lost in a crash is stored once."""
    while True:
        try:
            reply = await client.report_alert(device, "heat", idempotency_key=key)
        except TRANSIENT:
            await asyncio.sleep(0.05)
        else:
            return reply.tracking_id


def _report_sync(client: ec.SyncTelemetryClient, device: str, key: str) -> str:
    """:func:`_report` on the blocking client."""
    while True:
        try:
            reply = client.report_alert(device, "heat", idempotency_key=key)
        except TRANSIENT:
            time.sleep(0.05)
        else:
            return reply.tracking_id


class Load:
    """Writers reporting alerts until stopped, and the watcher's stopping rule."""

    def __init__(self, target: str, writers: int, *, sync: bool = False) -> None:
        self.target = target
        self.writers = writers
        # The blocking reader's test writes with blocking clients too: grpcio's
        # blocking and asyncio stacks in one process under server kills crashed the
        # test process once (a segfault in grpc core), and users pick one stack.
        self.sync = sync
        self.acked: list[str] = []
        self.received: list[telemetry_pb2.Alert] = []
        self._stop = asyncio.Event()
        self._expected: int | None = None
        self._tasks = asyncio.gather(*(self._write(w) for w in range(writers)))

    async def _write(self, number: int) -> None:
        if self.sync:
            await asyncio.to_thread(self._write_sync, number)
            return
        async with ec.TelemetryClient(self.target, timeout=2) as client:
            n = 0
            while not self._stop.is_set():
                self.acked.append(await _report(client, f"dev-{number}", f"w{number}-{n}"))
                n += 1
                await asyncio.sleep(0.005)

    def _write_sync(self, number: int) -> None:
        with ec.SyncTelemetryClient(self.target, timeout=2) as client:
            n = 0
            while not self._stop.is_set():
                self.acked.append(_report_sync(client, f"dev-{number}", f"w{number}-{n}"))
                n += 1
                time.sleep(0.005)

    def watched_all(self) -> bool:
        expected = self._expected
        return expected is not None and len(self.received) >= expected

    async def finish(self) -> None:
        """Stop the writers; the watcher stops once it has every acknowledged alert."""
        self._stop.set()
        await self._tasks
        # Known before the last alert is reported, so the watcher sees the count
        # no later than that alert.
        self._expected = len(self.acked) + 1
        if self.sync:
            with ec.SyncTelemetryClient(self.target, timeout=2) as sync_client:
                last = await asyncio.to_thread(_report_sync, sync_client, "dev-0", "last")
            self.acked.append(last)
            return
        async with ec.TelemetryClient(self.target, timeout=2) as client:
            self.acked.append(await _report(client, "dev-0", "last"))

    async def between_cuts(self, cut: int) -> None:
        await _until(lambda: len(self.received) >= cut * BETWEEN_CUTS)

    def check(self) -> None:
        received, acked = self.received, self.acked
        ids = [a.tracking_id for a in received]
        assert len(ids) == len(set(ids)), "an alert was delivered twice"
        assert set(ids) == set(acked), "an acknowledged alert was never delivered"
        assert len({a.cursor for a in received}) == len(received), "a cursor was given twice"
        # A writer reports one alert after another, so its alerts commit in that
        # order, and commit order is what a watch delivers.
        for w in range(self.writers):
            mine = [a.tracking_id for a in received if a.device_id == f"dev-{w}"]
            assert mine == [i for i in acked if i in set(mine)], f"writer {w}: out of order"


async def test_a_watch_resumes_across_three_sigkills_exactly_once(
    tmp_path: Path, mode: str
) -> None:
    server = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'events.db'}", "--workers", "1", http_address=""
    )
    await asyncio.to_thread(server.start)
    # The client's own defaults: backoff, breaker, throttle, as a user gets them.
    reads = Readers(mode, server.address)
    try:
        stream = reads.telemetry.watch_alerts(from_start=True)
        load = Load(server.address, writers=2, sync=reads.sync)
        consumer = asyncio.create_task(reads.consume(stream, load.received, load.watched_all))
        for cut in range(1, 4):
            await load.between_cuts(cut)
            server.kill()  # mid-stream, writers mid-call
            await asyncio.to_thread(server.restart)
        await load.between_cuts(4)
        await load.finish()
        await asyncio.wait_for(consumer, 120)
    finally:
        server.kill()
        await reads.close()
    load.check()
    assert len(load.received) > 4 * BETWEEN_CUTS
    assert stream.reconnects >= 3
    assert stream.cursor == load.received[-1].cursor


async def _watching(replica: ServerProcess) -> float:
    """WatchAlerts calls the replica is serving now, from its /metrics."""
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{replica.metrics_address}/metrics")).text
    except httpx.TransportError:
        return 0.0  # dead or restarting
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "eventwire_rpcs_in_flight"
        and sample.labels.get("grpc_method") == "WatchAlerts"
    )


async def _carrier(replicas: list[ServerProcess], consumer: Awaitable[None]) -> ServerProcess:
    """The replica serving the watch."""
    assert isinstance(consumer, asyncio.Task)
    for _ in range(500):
        if consumer.done():
            consumer.result()  # the watch failed: say how
            raise AssertionError("the watch ended early")
        for replica in replicas:
            if await _watching(replica) > 0:
                return replica
        await asyncio.sleep(0.02)
    raise AssertionError("no replica is serving the watch")


async def test_two_replicas_on_postgresql_a_watch_through_the_sdk_sees_each_alert_once(
    pg_url: str, mode: str
) -> None:
    replicas = [
        ServerProcess("--store", pg_url, "--grace", "3", "--workers", "1", http_address="")
        for _ in range(2)
    ]
    # One after another: concurrent migrators are the store tests' business.
    for replica in replicas:
        await asyncio.to_thread(replica.start)
    both = ec.targets(*(r.address for r in replicas))
    reads = Readers(mode, both)
    cuts: list[str] = []
    try:
        stream = reads.telemetry.watch_alerts(from_start=True)
        # Three writers, each balanced over both replicas, all at once.
        load = Load(both, writers=3, sync=reads.sync)
        consumer = asyncio.create_task(reads.consume(stream, load.received, load.watched_all))
        for cut, how in enumerate(["kill", "kill", "terminate"], start=1):
            await load.between_cuts(cut)
            carrier = await _carrier(replicas, consumer)
            before = stream.reconnects
            if how == "kill":
                carrier.kill()
            else:
                carrier.terminate()  # drains: its watch ends with UNAVAILABLE
                await asyncio.to_thread(carrier.wait)
            # The watch moved on to the other replica by itself.
            await _until(lambda before=before: stream.reconnects > before)  # type: ignore[misc]
            cuts.append(how)
            await asyncio.to_thread(carrier.restart)
        await load.between_cuts(4)
        await load.finish()
        await asyncio.wait_for(consumer, 120)
    finally:
        for replica in replicas:
            replica.kill()
        await reads.close()
    assert cuts == ["kill", "kill", "terminate"]
    load.check()
    assert stream.reconnects >= 3
