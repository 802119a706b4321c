"""Chaos: real server processes SIGKILLed, real faults on the wire, the tracker's own process
killed, forked and exited. Each test checks the store itself: every event_id present, once.

Bounded in time: progress is awaited by polling with deadlines, never by sleeping
"long enough"; sizes are small enough for a shared 2-core box (bench/ has the big run).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from eventwire.client import Tracker, TrackerConfig
from eventwire.testing import FaultProxy, running_server
from eventwire.testing._process import ServerProcess
from tests.support.paths import ROOT
from tests.support.tracker import stored_ids, until

NOWHERE = "127.0.0.1:1"


def assert_exactly_once(db: Path, ids: list[str]) -> None:
    stored = stored_ids(db)
    assert len(set(ids)) == len(ids)
    duplicated = len(stored) - len(set(stored))
    missing = set(ids) - set(stored)
    assert (len(missing), duplicated) == (0, 0), f"{len(missing)} lost, {duplicated} duplicated"
    assert set(stored) == set(ids)


def acked_at_least(tracker: Tracker, n: int) -> bool:
    return tracker.stats.acked >= n


def sent_above(tracker: Tracker, n: int) -> bool:
    return tracker.stats.sent > n


def errors_above(tracker: Tracker, n: int) -> bool:
    return tracker.stats.stream_errors > n


async def produce(tracker: Tracker, ids: list[str], n: int, per_tick: int = 250) -> None:
    """A steady stream of events rather than one burst, so faults land mid-flight."""
    for i in range(n):
        ids.append(tracker.track("chaos", user_id=f"u{i % 97}", properties={"i": str(i)}))
        if i % per_tick == per_tick - 1:
            await asyncio.sleep(0.03)


async def test_server_sigkilled_and_restarted_four_times(tmp_path: Path) -> None:
    n, kills = 20_000, 4
    db = tmp_path / "events.db"
    server = ServerProcess("--store", f"sqlite:///{db}", http_address="")
    await asyncio.to_thread(server.start)
    config = TrackerConfig(
        spool_dir=tmp_path / "spool", flush_interval=0.02, max_retry_delay=0.2, ack_timeout=3
    )
    ids: list[str] = []
    try:
        async with Tracker(server.address, config) as tracker:
            producer = asyncio.create_task(produce(tracker, ids, n))
            for k in range(kills):
                # Kill at points of progress, not at times: a slow box gets the same test.
                mark = (k + 1) * n // (kills + 2)
                await until(partial(acked_at_least, tracker, mark), 60, f"{mark} acks")
                server.kill()
                await asyncio.to_thread(server.restart)
            await producer
            assert await tracker.flush(timeout=60)
            stats = tracker.stats
    finally:
        server.kill()
    assert_exactly_once(db, ids)
    assert stats.stream_errors >= kills
    assert (stats.tracked, stats.acked, stats.dropped, stats.rejected) == (n, n, 0, 0)


async def test_resets_latency_and_a_blackhole(tmp_path: Path, db: Path, db_url: str) -> None:
    n = 20_000
    config = TrackerConfig(
        spool_dir=tmp_path / "spool", flush_interval=0.02, max_retry_delay=0.2, ack_timeout=1.0
    )
    ids: list[str] = []
    async with (
        running_server(store=db_url) as srv,
        FaultProxy(srv.address) as proxy,
        Tracker(proxy.address, config) as tracker,
    ):
        producer = asyncio.create_task(produce(tracker, ids, n))
        proxy.set_faults(latency=0.02, jitter=0.03)
        await until(lambda: tracker.stats.acked >= n // 5, 60, "acks through latency")
        for burst in range(3):
            # A fresh burst on the wire, so that the reset breaks a stream in use
            # (a reset between streams would break nothing the tracker can see).
            sent = tracker.stats.sent
            ids.extend(
                tracker.track("chaos", user_id="burst", properties={"b": f"{burst}-{i}"})
                for i in range(300)
            )
            await until(partial(sent_above, tracker, sent), 20, "the burst sent")
            errors = tracker.stats.stream_errors
            acked = tracker.stats.acked
            proxy.reset_connections()
            await until(partial(errors_above, tracker, errors), 20, "the reset seen")
            await until(partial(acked_at_least, tracker, acked + 1), 20, "acks after a reset")
        # A blackhole answers nothing and closes nothing: only the ack timeout notices.
        spooled = tracker.stats.spooled
        proxy.set_faults(blackhole=True)
        await until(lambda: tracker.stats.spooled > spooled, 20, "a spill during the blackhole")
        proxy.set_faults()
        await producer
        assert await tracker.flush(timeout=60)
        stats = tracker.stats
    assert_exactly_once(db, ids)
    assert (stats.acked, stats.dropped) == (n + 900, 0)
    assert stats.stream_errors >= 4


async def child(
    mode: str, target: str, spool: Path, n: int, out: Path, **env: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.tracker_child",
        mode,
        target,
        str(spool),
        str(n),
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR", **env},
    )


async def next_report(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        pytest.fail(f"child exited ({await proc.wait()}) without reporting")
    report: dict[str, Any] = json.loads(line)
    return report


async def report_where(
    proc: asyncio.subprocess.Process, check: Any, timeout: float, what: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        report = await next_report(proc, remaining)
        if check(report):
            return report


async def test_tracker_process_sigkilled_mid_replay(tmp_path: Path, db: Path, db_url: str) -> None:
    n = 20_000
    spool = tmp_path / "spool"
    out = tmp_path / "ids"
    async with running_server(store=db_url) as srv, FaultProxy(NOWHERE) as proxy:
        proc = await child("spool", proxy.address, spool, n, out)
        try:
            # The server is unreachable: the child can only spool.
            await report_where(
                proc,
                lambda r: r["spool_events"] == n and r["memory_events"] == 0,
                60,
                "every event spooled by the child",
            )
            # Now a slow link to the server, and the child killed halfway through its replay.
            proxy.set_faults(bandwidth=1_000_000)
            proxy.set_upstream(srv.address)
            killed_at = await report_where(
                proc, lambda r: r["acked"] >= n // 3, 60, "the replay under way"
            )
        finally:
            proc.kill()
            await proc.wait()
        assert killed_at["acked"] < n, "killed before the replay finished"
        ids = out.read_text().split()
        assert len(ids) == n

        config = TrackerConfig(spool_dir=spool, flush_interval=0.02)
        async with Tracker(srv.address, config) as again:
            assert again.stats.recovered >= n - killed_at["acked"]
            assert await again.flush(timeout=60)
            stats = again.stats
    assert_exactly_once(db, ids)
    # What was delivered but not yet deleted from disk came back as duplicates, not copies.
    assert stats.acked == stats.recovered
    assert not list(spool.glob("lane-*/*.seg"))


async def test_exit_without_close_delivers(tmp_path: Path, db: Path, db_url: str) -> None:
    out = tmp_path / "ids"
    async with running_server(store=db_url) as srv:
        proc = await child("exit", srv.address, tmp_path / "spool", 3000, out)
        report = await next_report(proc, 60)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    # Queued in memory when the script ended (60 s flush interval): atexit sent them.
    assert report["memory_events"] > 0
    assert_exactly_once(db, out.read_text().split())


async def test_fork_after_grpc_started(tmp_path: Path, db: Path, db_url: str) -> None:
    n = 500
    out = tmp_path / "ids"
    async with running_server(store=db_url) as srv:
        # As the README's Delivery section requires of processes that fork after using gRPC:
        # gRPC core's own fork handlers crash such children now and then
        # (SIGSEGV in a core thread, about 1 fork in 3 here).
        proc = await child(
            "fork", srv.address, tmp_path / "spool", n, out, GRPC_ENABLE_FORK_SUPPORT="false"
        )
        done = await next_report(proc, 90)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    kid = done["child"]
    assert done["status"] == 0
    # The child starts empty: nothing of the parent's queue or counters.
    assert kid["fresh"] == dict.fromkeys(kid["fresh"], 0)
    # It cannot use gRPC, so its events go to a lane of its own, never the parent's.
    assert (kid["after"]["tracked"], kid["after"]["spooled"]) == (n, n)
    assert kid["lane"] != done["parent_lane"]
    assert kid["closed"] is False, "close() in such a child cannot report delivery"
    # The parent adopted the child's lane once it was released, and delivered it.
    parent = done["parent"]
    assert (parent["tracked"], parent["recovered"], parent["acked"]) == (2 * n, n, 3 * n)
    assert done["delivered"] is True
    assert done["close"] is True
    assert_exactly_once(db, out.read_text().split())


async def test_fork_before_first_use(tmp_path: Path, db: Path, db_url: str) -> None:
    out = tmp_path / "ids"
    async with running_server(store=db_url) as srv:
        proc = await child("fork-lazy", srv.address, tmp_path / "spool", 500, out)
        done = await next_report(proc, 90)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    # The parent never started gRPC: the child delivers by itself, close() says so.
    assert done["status"] == 0
    assert done["parent"]["tracked"] == 0
    assert_exactly_once(db, out.read_text().split())
