"""Six 60 MiB streams at once: the in-flight byte budget keeps the server's RSS bounded."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing._process import ServerProcess
from tests.conftest import CHANNEL_OPTIONS

MIB = 1 << 20
BUDGET = 96 * MIB
STREAMS = 6
STREAM_BYTES = 60 * MIB
CHUNK = 28 * 1024  # one event, near the 32 KiB a single event may have
EVENTS_PER_STREAM = STREAM_BYTES // CHUNK


def rss_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak) of a process, in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def one_stream(address: str, n: int) -> analytics_pb2.TrackEventResponse | grpc.RpcError:
    """One 60 MiB stream on a connection of its own (so that one connection's flow
    control is not what keeps the streams small); the reply or the refusal."""
    blob = {f"k{j}": "x" * 7000 for j in range(4)}
    requests = (
        analytics_pb2.TrackEventRequest(event_name="big", event_id=f"s{n}-{i}", properties=blob)
        for i in range(EVENTS_PER_STREAM)
    )
    options = (*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1))
    with grpc.insecure_channel(address, options=options) as channel:
        try:
            reply: analytics_pb2.TrackEventResponse = analytics_pb2_grpc.AnalyticsServiceStub(
                channel
            ).StreamEvents(requests, timeout=120)
        except grpc.RpcError as exc:
            return exc
    return reply


async def test_concurrent_big_streams_are_refused_past_the_budget(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    proc = ServerProcess(
        "--store",
        f"sqlite:///{db}",
        "--max-inflight-bytes",
        str(BUDGET),
        "--sqlite-synchronous",
        "off",
        http_address="",
    ).start()
    try:
        baseline = rss_kib(proc.pid, "VmRSS")
        results = await asyncio.gather(
            *(asyncio.to_thread(one_stream, proc.address, n) for n in range(STREAMS))
        )
        peak = rss_kib(proc.pid, "VmHWM")
        ok = [r for r in results if isinstance(r, analytics_pb2.TrackEventResponse)]
        refused = [r for r in results if not isinstance(r, analytics_pb2.TrackEventResponse)]
        assert refused, "six 60 MiB streams fit a 96 MiB budget?"
        for error in refused:
            assert isinstance(error, grpc.Call)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert "max-inflight-bytes" in (error.details() or "")
            pushback = dict(error.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
            assert pushback is not None
            assert int(str(pushback)) > 0
        # Nothing is held any more: the server takes a big stream again.
        again = await asyncio.to_thread(one_stream, proc.address, 99)
        assert isinstance(again, analytics_pb2.TrackEventResponse), again
        growth_mib = (peak - baseline) / 1024
        # Held bytes stay under the budget; the rest is grpc's buffers, one
        # commit's rows on their way to SQLite and what the allocator keeps of
        # refused streams: 2.2x the budget measured, 3.9x (378 MiB) without one.
        assert growth_mib < 2.5 * BUDGET / MIB, f"RSS grew {growth_mib:.0f} MiB"
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert stored == EVENTS_PER_STREAM * (len(ok) + 1)
    print(f"RSS baseline {baseline // 1024} MiB, peak {peak // 1024} MiB, {len(ok)} streams ok")
